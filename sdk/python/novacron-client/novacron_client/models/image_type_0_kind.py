from enum import StrEnum

class ImageType0Kind(StrEnum):
    KERNEL = "kernel"

    def __str__(self) -> str:
        return str(self.value)
