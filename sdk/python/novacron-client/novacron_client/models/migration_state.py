from enum import StrEnum

class MigrationState(StrEnum):
    CANCELLED = "cancelled"
    COMMITTED = "committed"
    FAILED = "failed"
    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"

    def __str__(self) -> str:
        return str(self.value)
