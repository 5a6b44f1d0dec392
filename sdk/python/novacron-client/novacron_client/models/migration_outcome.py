from enum import StrEnum

class MigrationOutcome(StrEnum):
    ABORTED = "aborted"
    COMMITTED = "committed"

    def __str__(self) -> str:
        return str(self.value)
