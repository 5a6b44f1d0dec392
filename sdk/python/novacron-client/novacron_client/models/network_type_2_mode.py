from enum import StrEnum

class NetworkType2Mode(StrEnum):
    NONE = "none"

    def __str__(self) -> str:
        return str(self.value)
