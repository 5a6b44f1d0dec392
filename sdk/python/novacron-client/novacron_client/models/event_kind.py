from enum import StrEnum

class EventKind(StrEnum):
    AUDIT = "audit"
    BACKUP = "backup"
    HA = "ha"
    MIGRATION = "migration"
    NETWORK = "network"
    NODE = "node"
    OPERATION = "operation"
    VM = "vm"

    def __str__(self) -> str:
        return str(self.value)
