"""Domain errors raised by services; one DRF exception handler maps them to 4xx/503 JSON."""


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    status_code = 400


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class IdempotencyKeyReused(DomainError):
    status_code = 422


class QueueUnavailable(DomainError):
    status_code = 503
