from enum import StrEnum

class StorageKind(StrEnum):
    SHARED_DIR = "shared-dir"

    def __str__(self) -> str:
        return str(self.value)
