from enum import StrEnum

class ImageType2Kind(StrEnum):
    ISO = "iso"

    def __str__(self) -> str:
        return str(self.value)
