"""What every use case is told besides its session: who acts, the selector key, the topic
namespace; and the keyset cursor that every paginated listing shares."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.orm import InstrumentedAttribute

from shared.errors import ValidationFailed

Q = TypeVar("Q", bound=Select[Any])


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


def keyset_page(
    query: Q,
    at: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[uuid.UUID],
    *,
    cursor: str | None,
    limit: int,
    newest_first: bool,
) -> Q:
    """One page of `query` ordered by (`at`, `ident`), resuming after `cursor`: one row more
    than `limit` is fetched, so the caller knows whether another page follows."""
    if cursor:
        after_at, after_id = decode_cursor(cursor)
        row, mark = func.row(at, ident), func.row(after_at, after_id)
        query = query.where(row < mark if newest_first else row > mark)
    order = (at.desc(), ident.desc()) if newest_first else (at, ident)
    return query.order_by(*order).limit(limit + 1)
