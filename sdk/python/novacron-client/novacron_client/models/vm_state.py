from enum import StrEnum

class VmState(StrEnum):
    CRASHED = "crashed"
    CREATING = "creating"
    MIGRATING = "migrating"
    PAUSED = "paused"
    RUNNING = "running"
    STARTING = "starting"
    STOPPED = "stopped"
    STOPPING = "stopping"

    def __str__(self) -> str:
        return str(self.value)
