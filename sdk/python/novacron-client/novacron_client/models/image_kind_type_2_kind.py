from enum import StrEnum

class ImageKindType2Kind(StrEnum):
    ISO = "iso"

    def __str__(self) -> str:
        return str(self.value)
