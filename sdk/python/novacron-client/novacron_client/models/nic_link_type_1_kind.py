from enum import StrEnum

class NicLinkType1Kind(StrEnum):
    BRIDGE = "bridge"

    def __str__(self) -> str:
        return str(self.value)
