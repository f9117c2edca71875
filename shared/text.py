"""Text types for request bodies: what PostgreSQL can store, and references no one can mimic.

PostgreSQL refuses NUL in `text` and `jsonb`, and a lone UTF-16 surrogate (which JSON's `\\ud800`
escape produces) cannot be encoded as UTF-8 at all. Left to the database, either fails the
transaction with a 500 whose error carries the other parameters of the statement; refused here,
it is a 422 that names only the field. Case references are restricted to ASCII, so a Cyrillic or
Arabic look-alike of another authority's reference cannot be registered.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

# NUL and the surrogate code points: the characters a UTF-8 PostgreSQL cannot hold.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
CASE_REFERENCE_PATTERN = r"^[A-Za-z0-9./:_-]+$"
CASE_REFERENCE_MAX_LENGTH = 64


def check_storable(value: str) -> str:
    """`value` unchanged, or ValueError when PostgreSQL could not store it."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return value
    if found.group() == "\x00":
        raise ValueError("text must not contain NUL characters")
    raise ValueError("text must not contain unpaired surrogate code points")


def check_storable_json(value: Any) -> Any:
    """`value` unchanged, or ValueError when any string in it (keys included) could not be stored;
    for free-form JSON members such as a public JWK, where a field type cannot say it."""
    if isinstance(value, str):
        check_storable(value)
    elif isinstance(value, dict):
        for key, member in value.items():
            check_storable_json(key)
            check_storable_json(member)
    elif isinstance(value, list):
        for member in value:
            check_storable_json(member)
    return value


StorableText = Annotated[str, AfterValidator(check_storable)]
"""Any text PostgreSQL can store; combine with `Field(max_length=...)` as usual."""

CaseReference = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=CASE_REFERENCE_MAX_LENGTH, pattern=CASE_REFERENCE_PATTERN
    ),
]
"""A human case reference in plain ASCII: letters, digits and `. / : _ -`."""
