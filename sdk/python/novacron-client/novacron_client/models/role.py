from enum import StrEnum

class Role(StrEnum):
    ADMIN = "admin"
    CLUSTER_ADMIN = "cluster-admin"
    CLUSTER_VIEWER = "cluster-viewer"
    OPERATOR = "operator"
    VIEWER = "viewer"

    def __str__(self) -> str:
        return str(self.value)
