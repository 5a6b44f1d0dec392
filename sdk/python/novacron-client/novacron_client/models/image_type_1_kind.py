from enum import StrEnum

class ImageType1Kind(StrEnum):
    DISK = "disk"

    def __str__(self) -> str:
        return str(self.value)
