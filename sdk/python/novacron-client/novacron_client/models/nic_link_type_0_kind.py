from enum import StrEnum

class NicLinkType0Kind(StrEnum):
    NETWORK = "network"

    def __str__(self) -> str:
        return str(self.value)
