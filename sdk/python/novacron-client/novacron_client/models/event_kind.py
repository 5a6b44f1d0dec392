from enum import StrEnum

class EventKind(StrEnum):
    BACKUP = "backup"
    HA = "ha"
    MIGRATION = "migration"
    NODE = "node"
    OPERATION = "operation"
    VM = "vm"

    def __str__(self) -> str:
        return str(self.value)
