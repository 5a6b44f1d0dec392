from enum import StrEnum

class RepoLocationType0Kind(StrEnum):
    DIR = "dir"

    def __str__(self) -> str:
        return str(self.value)
