"""Signed cookie values: they round-trip, and any edit, other purpose or old age is refused."""

from __future__ import annotations

import pytest

from shared.cookies import SignedValue

KEY = b"k" * 32


def test_round_trip() -> None:
    signer = SignedValue(KEY, purpose="a")
    assert signer.loads(signer.dumps({"sid": "x", "n": 1}), max_age=60) == {"sid": "x", "n": 1}


@pytest.mark.parametrize("edit", [lambda v: "f" + v[1:], lambda v: v[:-1], lambda v: v + "."])
def test_an_edited_value_is_refused(edit: object) -> None:
    signer = SignedValue(KEY, purpose="a")
    value = signer.dumps({"sid": "x"})
    assert callable(edit)
    assert signer.loads(edit(value), max_age=60) is None


def test_another_purpose_or_key_is_refused() -> None:
    value = SignedValue(KEY, purpose="a").dumps({"sid": "x"})
    assert SignedValue(KEY, purpose="b").loads(value, max_age=60) is None
    assert SignedValue(b"z" * 32, purpose="a").loads(value, max_age=60) is None


def test_an_old_value_is_refused() -> None:
    now = [1000.0]
    signer = SignedValue(KEY, purpose="a", clock=lambda: now[0])
    value = signer.dumps({"sid": "x"})
    now[0] += 61
    assert signer.loads(value, max_age=60) is None
    assert signer.loads(value, max_age=120) == {"sid": "x"}


def test_missing_values_and_short_keys() -> None:
    assert SignedValue(KEY, purpose="a").loads(None, max_age=60) is None
    assert SignedValue(KEY, purpose="a").loads("a.b", max_age=60) is None
    with pytest.raises(ValueError, match="32 bytes"):
        SignedValue(b"short", purpose="a")
