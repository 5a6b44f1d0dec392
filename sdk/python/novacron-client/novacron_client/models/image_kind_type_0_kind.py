from enum import StrEnum

class ImageKindType0Kind(StrEnum):
    KERNEL = "kernel"

    def __str__(self) -> str:
        return str(self.value)
