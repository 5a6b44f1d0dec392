from enum import StrEnum

class NicLinkType2Kind(StrEnum):
    NAT = "nat"

    def __str__(self) -> str:
        return str(self.value)
