"""The small domain error hierarchy, shared by APIs (mapped to problem+json) and consumers.

Raising one of these anywhere below a route or handler is the only way to refuse a request;
`shared.problems` maps each to its HTTP status once.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal that the caller can understand and act on; never carries personal data."""

    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFound(DomainError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PreconditionFailed(DomainError):
    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class ValidationFailed(DomainError):
    status, title, type_slug = 422, "Validation failed", "validation-failed"


class Unauthorized(DomainError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"

    def __init__(
        self, detail: str, *, error: str = "invalid_token", extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail, extra=extra)
        self.error = error


class Forbidden(DomainError):
    status, title, type_slug = 403, "Forbidden", "forbidden"

    def __init__(
        self,
        detail: str,
        *,
        required_scopes: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, extra=extra)
        self.required_scopes = required_scopes


class TooManyRequests(DomainError):
    status, title, type_slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PayloadTooLarge(DomainError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"
