"""Transaction-scoped advisory locks that make check-then-write use cases safe under concurrency.

Registering a case first looks for what is already there (the same reference, open cases
sharing a selector) and then writes. Two registrations running at once would each miss the
other's uncommitted rows: both pass the duplicate check (one then fails on the unique key
with a 500), or neither links to the other. Taking a lock per natural key before looking
makes the second wait until the first commits; under READ COMMITTED its next statement then
sees the first's rows.

Locks are taken in ascending lock-id order, so two transactions wanting overlapping sets can
never wait on each other in a cycle; a collision of two keys on one id only serialises more.
Registration takes them inside its server-side function (`register_case`, migration 0015),
in the order `idents` gives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# The two-integer advisory lock space is separate from the one-bigint space the audit chain
# uses; this first integer names "registration keys" within it.
REGISTRATION_SPACE = 0x0CA5


def lock_id(key: str) -> int:
    """A stable 32-bit id for `key` (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)


def idents(keys: Iterable[str]) -> list[int]:
    """The lock ids of `keys`, once each, in the ascending order they must be taken in."""
    return sorted({lock_id(key) for key in keys})
