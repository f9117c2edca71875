"""Inserting many rows, into one table or several, with one statement executed once.

An executemany runs its INSERT once per row (with any statement trigger); here each column
travels as one array and PostgreSQL unnests them, in the given order, so a fan-out's dozens
of rows cost one execution. The statement is built once per table: building and keying a
SQLAlchemy statement costs more than executing this one.

`write` goes further for a transaction that fills several tables at once (a fan-out batch:
deliveries, releases, exclusions, outbox events, audit entries, and the responses marked
routed): one statement whose INSERTs (and UPDATEs, `RowUpdater`) are data-modifying CTEs, so
the batch pays one round trip instead of one per table. Foreign keys between them hold:
PostgreSQL checks them once the whole statement has run. The statement is built once per
combination of tables, never per row count, so each connection's prepared-statement cache
holds a handful of them, whatever the batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    ColumnCollection,
    ColumnElement,
    Insert,
    Table,
    Update,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from shared.db import Base


class _Arrays:
    """The rows' columns as one array each, named after the table too, so the arrays of
    several tables can share one statement."""

    def __init__(self, table: Table, columns: Mapping[str, TypeEngine[Any]]) -> None:
        self.table = table.name
        self._names = list(columns)
        self._keys = {name: f"{table.name}_{name}" for name in columns}
        self._params = [
            bindparam(self._keys[name], type_=ARRAY(kind)) for name, kind in columns.items()
        ]

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """The statement's parameters for `rows`: one array per column."""
        return {self._keys[name]: [row[name] for row in rows] for name in self._names}


class RowInserter(_Arrays):
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
        # the table, not the mapped class: with parameters, an ORM insert means bulk mode
        table = cast_type(Table, model.__table__)
        super().__init__(table, columns)
        unnested = (
            func.unnest(*self._params).table_valued(*columns, with_ordinality="n").render_derived()
        )
        casts = casts or {}
        picked = [
            cast(unnested.c[name], casts[name]) if name in casts else unnested.c[name]
            for name in columns
        ]
        # in the given order: serial ids follow it (the outbox relay publishes in id order)
        ordered = select(*picked).order_by(unnested.c.n)
        self.statement: Insert | Update = insert(table).from_select(list(columns), ordered)

    async def insert(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows`, each holding a value for every column."""
        await write(session, Rows(self, rows))


class RowUpdater(_Arrays):
    """`UPDATE <model's table> SET ... FROM unnest(<one array per column>) WHERE <key> = ...`:
    one row updated per row given, each with its own values, in one statement."""

    def __init__(
        self,
        model: type[Base],
        *,
        key: str,
        columns: Mapping[str, TypeEngine[Any]],
        values: Callable[[Table, ColumnCollection[str, Any]], Mapping[str, Any]],
        where: Callable[[Table], ColumnElement[bool]] | None = None,
    ) -> None:
        """`columns`: the key and each column given per row, with its type; `values` gives
        the SET clause from the table's columns and the given ones; `where`, a condition a
        row must meet besides its key."""
        table = cast_type(Table, model.__table__)
        super().__init__(table, columns)
        given = func.unnest(*self._params).table_valued(*columns).render_derived()
        matched = update(table).where(table.c[key] == given.c[key])
        if where is not None:
            matched = matched.where(where(table))
        self.statement = matched.values(values(table, given.c))


@dataclass(frozen=True)
class Rows:
    """Rows for one table, each holding a value for every column of its inserter."""

    inserter: RowInserter | RowUpdater
    rows: Sequence[Mapping[str, Any]]


async def write(session: AsyncSession, *parts: Rows) -> None:
    """Insert every part's rows with one statement executed once; no statement if all are
    empty. Parts for the same table are inserted together, in the order given."""
    merged: dict[RowInserter | RowUpdater, list[Mapping[str, Any]]] = {}
    for part in parts:
        if part.rows:
            merged.setdefault(part.inserter, []).extend(part.rows)
    if not merged:
        return
    params: dict[str, list[Any]] = {}
    for inserter, rows in merged.items():
        params.update(inserter.arrays(rows))
    await session.execute(statement(tuple(merged)), params)


_COMBINED: dict[tuple[RowInserter | RowUpdater, ...], Insert | Update] = {}


def statement(inserters: tuple[RowInserter | RowUpdater, ...]) -> Insert | Update:
    """The one statement writing each of `inserters`' rows: the first ones as data-modifying
    CTEs of the last's statement; built once per combination."""
    if len(inserters) == 1:
        return inserters[0].statement
    # their arrays and CTEs are named after their tables
    assert len({i.table for i in inserters}) == len(inserters), "one part a table"
    built = _COMBINED.get(inserters)
    if built is None:
        *first, last = inserters
        ctes = [i.statement.cte(f"{i.table}_rows") for i in first]
        built = _COMBINED[inserters] = last.statement.add_cte(*ctes)
    return built
