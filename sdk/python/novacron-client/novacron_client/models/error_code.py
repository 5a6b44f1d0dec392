from enum import StrEnum

class ErrorCode(StrEnum):
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"
    INTERNAL = "internal"
    INVALID_ARGUMENT = "invalid_argument"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"
    NO_CAPACITY = "no_capacity"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    PERMISSION_DENIED = "permission_denied"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

    def __str__(self) -> str:
        return str(self.value)
