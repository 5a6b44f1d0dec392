from enum import StrEnum

class Firmware(StrEnum):
    BIOS = "bios"
    UEFI = "uefi"

    def __str__(self) -> str:
        return str(self.value)
