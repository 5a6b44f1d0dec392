from enum import StrEnum

class ImageKindType1Kind(StrEnum):
    DISK = "disk"

    def __str__(self) -> str:
        return str(self.value)
