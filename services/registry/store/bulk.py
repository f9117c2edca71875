"""Inserting many rows with one statement executed once.

An executemany runs its INSERT once per row (with any statement trigger); here each column
travels as one array and PostgreSQL unnests them, in the given order, so a fan-out's dozens
of rows cost one execution. The statement is built once per table: building and keying a
SQLAlchemy statement costs more than executing this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from typing import cast as cast_type

from sqlalchemy import Table, bindparam, cast, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from shared.db import Base


class RowInserter:
    """`INSERT INTO <model's table> SELECT ... FROM unnest(<one array per column>)`."""

    def __init__(
        self,
        model: type[Base],
        *,
        columns: Mapping[str, TypeEngine[Any]],
        casts: Mapping[str, TypeEngine[Any]] | None = None,
    ) -> None:
        """`columns`: each column and the type of its array's elements; a column in `casts` is
        sent as that type and cast to this one (JSON text to jsonb, say)."""
        self._names = list(columns)
        arrays = [bindparam(name, type_=ARRAY(kind)) for name, kind in columns.items()]
        unnested = func.unnest(*arrays).table_valued(*columns, with_ordinality="n").render_derived()
        casts = casts or {}
        picked = [
            cast(unnested.c[name], casts[name]) if name in casts else unnested.c[name]
            for name in columns
        ]
        # in the given order: serial ids follow it (the outbox relay publishes in id order)
        ordered = select(*picked).order_by(unnested.c.n)
        # the table, not the mapped class: with parameters, an ORM insert means bulk mode
        table = cast_type(Table, model.__table__)
        self._statement = insert(table).from_select(self._names, ordered)

    async def insert(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows`, each holding a value for every column."""
        if rows:
            arrays = {name: [row[name] for row in rows] for name in self._names}
            await session.execute(self._statement, arrays)
