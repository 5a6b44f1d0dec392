from enum import StrEnum

class AuditOutcome(StrEnum):
    FAILED = "failed"
    OK = "ok"
    REFUSED = "refused"

    def __str__(self) -> str:
        return str(self.value)
