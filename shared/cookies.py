"""Tamper-evident, timestamped cookie values signed with HMAC-SHA256.

Starlette's session middleware needs itsdangerous, which is not installed; this is the small part
of it we need. Values are signed, not encrypted: put nothing secret in them, only references
and one-time values whose disclosure to the browser's owner is harmless. A `purpose` is mixed
into the signature so a value minted for one cookie is refused as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignedValue:
    """Signs and checks `payload.timestamp.signature` strings for one purpose and key."""

    def __init__(self, key: bytes, *, purpose: str, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the signing key must be at least 32 bytes")
        self._key = key
        self._purpose = purpose.encode()
        self._clock = clock

    def _sign(self, message: str) -> str:
        digest = hmac.new(self._key, self._purpose + b"\x00" + message.encode(), hashlib.sha256)
        return _b64encode(digest.digest())

    def dumps(self, data: dict[str, Any]) -> str:
        """A cookie-safe string carrying `data` and the time it was signed."""
        payload = _b64encode(json.dumps(data, separators=(",", ":")).encode())
        message = f"{payload}.{int(self._clock())}"
        return f"{message}.{self._sign(message)}"

    def loads(self, value: str | None, *, max_age: float) -> dict[str, Any] | None:
        """The data, if the signature holds and it was signed less than `max_age` seconds ago."""
        if not value or value.count(".") != 2:
            return None
        payload, stamp, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{payload}.{stamp}")):
            return None
        if not stamp.isdigit() or self._clock() - int(stamp) > max_age:
            return None
        try:
            data = json.loads(_b64decode(payload))
        except (binascii.Error, ValueError):
            return None
        return data if isinstance(data, dict) else None
