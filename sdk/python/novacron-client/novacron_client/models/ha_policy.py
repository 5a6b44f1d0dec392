from enum import StrEnum

class HaPolicy(StrEnum):
    NONE = "none"
    RESTART = "restart"

    def __str__(self) -> str:
        return str(self.value)
