"""What every use case is told besides its session: who acts, the selector key, the topic
namespace; and the keyset cursor that every paginated listing shares."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.errors import ValidationFailed


@dataclass(frozen=True)
class Actor:
    """Who acts: the OAuth client and, for authorities, the jurisdiction of its token."""

    client_id: str
    jurisdiction: str


@dataclass(frozen=True)
class Context:
    """What the use cases need besides the session: the selector key and topic namespace."""

    hmac_key: bytes
    topic_prefix: str


def encode_cursor(created_at: datetime, case_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, ident = raw.split("|", 1)
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except ValueError as exc:
        raise ValidationFailed("invalid cursor") from exc
