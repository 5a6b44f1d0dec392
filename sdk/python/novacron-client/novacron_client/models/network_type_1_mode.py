from enum import StrEnum

class NetworkType1Mode(StrEnum):
    BRIDGE = "bridge"

    def __str__(self) -> str:
        return str(self.value)
