"""Inserting many rows with one statement executed once.

An executemany runs its INSERT once per row (with any statement trigger); here each column
travels as one array and PostgreSQL unnests them, in the given order, so a fan-out's dozens
of rows cost one execution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, cast, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from shared.db import Base


async def insert_rows(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Mapping[str, TypeEngine[Any]],
    casts: Mapping[str, TypeEngine[Any]] | None = None,
) -> None:
    """INSERT `rows` (each with every key of `columns`, the type of its array's elements) into
    `model`'s table; a column in `casts` is sent as its `columns` type and cast to this one."""
    if not rows:
        return
    arrays = [
        bindparam(name, [row[name] for row in rows], type_=ARRAY(kind))
        for name, kind in columns.items()
    ]
    unnested = func.unnest(*arrays).table_valued(*columns, with_ordinality="n").render_derived()
    casts = casts or {}
    picked = [
        cast(unnested.c[name], casts[name]) if name in casts else unnested.c[name]
        for name in columns
    ]
    # in the given order: serial ids follow it (the outbox relay publishes in id order)
    ordered = select(*picked).order_by(unnested.c.n)
    await session.execute(insert(model).from_select(list(columns), ordered))
