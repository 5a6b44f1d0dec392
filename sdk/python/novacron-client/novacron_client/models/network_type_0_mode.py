from enum import StrEnum

class NetworkType0Mode(StrEnum):
    USER = "user"

    def __str__(self) -> str:
        return str(self.value)
