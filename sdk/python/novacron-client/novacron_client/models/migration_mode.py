from enum import StrEnum

class MigrationMode(StrEnum):
    AUTO = "auto"
    POSTCOPY = "postcopy"
    PRECOPY = "precopy"

    def __str__(self) -> str:
        return str(self.value)
