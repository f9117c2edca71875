"""The webhook decisions, pure: endpoint states, which URLs may be registered, when a failed
call is tried again (capped exponential backoff), and when an endpoint that keeps failing is
disabled.

An endpoint is `pending_approval` from self-service registration until an administrator
approves it (`active`); only active endpoints are called. One that keeps failing becomes
`disabled` (an alert fires) until an administrator approves it again; the owner may delete it
(`deleted`, kept for the delivery log). A message to an endpoint is `pending` until the
endpoint answers 2xx (`delivered`) or its attempts run out (`failed`).
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit


class EndpointState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class MessageState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


ENDPOINT_STATES = tuple(EndpointState)
MESSAGE_STATES = tuple(MessageState)
# States an administrator may approve from: a new endpoint, or one disabled after failures.
APPROVABLE = frozenset({EndpointState.PENDING_APPROVAL, EndpointState.DISABLED})
# Endpoints a jurisdiction may hold at once (not deleted): enough to rotate a receiver.
MAX_ENDPOINTS = 5
MAX_URL_LENGTH = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


class UrlRefused(ValueError):
    """A URL that the hub will not call; the message says why."""


def check_url(url: str, *, allow_insecure_loopback: bool) -> str:
    """The URL if the hub may call it: https with a host and no credentials, or, only when
    the setting allows it (development and tests), plain http to a loopback address."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise UrlRefused("the URL cannot be parsed") from exc
    if not host:
        raise UrlRefused("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("credentials do not belong in the URL; the hub signs every call")
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment")
    loopback = _is_loopback(host)
    if loopback and allow_insecure_loopback and parts.scheme in ("http", "https"):
        return url
    if parts.scheme != "https":
        raise UrlRefused("the URL must use https://")
    if loopback or _is_internal_address(host):
        # the hub's own network is no receiver; names are checked by the approving admin
        raise UrlRefused("the URL must not name a loopback, private or reserved address")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True)
class RetryPolicy:
    """When to call again after a failure, and when to stop.

    The wait doubles from `base` with each attempt up to `cap`; a message is given up after
    `max_attempts`. An endpoint is disabled once it has failed `disable_after_failures` calls
    in a row *and* has been failing for at least `disable_after` — a short outage with many
    messages queued must not disable a receiver that is merely restarting.
    """

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 20
    disable_after_failures: int = 20
    disable_after: timedelta = timedelta(hours=24)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed call (1 for the first)."""
        factor = 1 << min(max(attempts - 1, 0), 32)
        return min(self.base * factor, self.cap)

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to call again after the `attempts`-th failure, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        return now + self.backoff(attempts)

    def should_disable(
        self, *, consecutive_failures: int, failing_since: datetime | None, now: datetime
    ) -> bool:
        """True when an endpoint has failed long and often enough to stop calling it."""
        if failing_since is None or consecutive_failures < self.disable_after_failures:
            return False
        return now - failing_since >= self.disable_after


def is_success(status_code: int) -> bool:
    """Standard Webhooks: any 2xx acknowledges the message; everything else is retried."""
    return 200 <= status_code < 300


@dataclass(frozen=True)
class Outcome:
    """What one call to an endpoint did: a status code, or the class of the error."""

    row_id: int
    endpoint_id: uuid.UUID
    attempt: int
    status_code: int | None
    error_class: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and is_success(self.status_code)
