from enum import StrEnum

class AccelChoice(StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"

    def __str__(self) -> str:
        return str(self.value)
