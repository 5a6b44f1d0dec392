from enum import StrEnum

class VmAction(StrEnum):
    REBOOT = "reboot"

    def __str__(self) -> str:
        return str(self.value)
