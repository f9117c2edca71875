"""Unit tests for selector normalisation, keyed hashing and masking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.cases.selectors import (
    InvalidSelector,
    SelectorKind,
    mask,
    normalise,
    selector_hash,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
Kind = SelectorKind


def wide(text: str) -> str:
    """The full-width spelling of ASCII text, as some phone keyboards produce it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    ("kind", "spellings", "expected"),
    [
        (
            Kind.PHONE_NUMBER,
            ["+33 6 12 34 56 78", "0033612345678", "+33 (0)6-12-34-56-78"],
            "+33612345678",
        ),
        (Kind.PHONE_NUMBER, [wide("+33612345678"), " +33612345678 "], "+33612345678"),
        (Kind.ACCOUNT_HANDLE, ["@Alice_B", " alice_b ", wide("@ALICE_B")], "alice_b"),
        (Kind.GROUP_ID, ["Straße-Chat", " STRASSE-chat"], "strasse-chat"),
        (Kind.USER_ID, ["ID12345", "id12345 ", wide("ID12345")], "id12345"),
        (Kind.EMAIL, ["Alice@Example.ORG", " alice@example.org"], "alice@example.org"),
        (Kind.IP_ADDRESS, ["203.0.113.7", " 203.0.113.7", "::ffff:203.0.113.7"], "203.0.113.7"),
        (Kind.IP_ADDRESS, ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"], "2001:db8::1"),
    ],
)
def test_equivalent_spellings_normalise_and_hash_equal(
    kind: SelectorKind, spellings: list[str], expected: str
) -> None:
    assert {normalise(kind, s) for s in spellings} == {expected}
    assert len({selector_hash(KEY, kind, normalise(kind, s)) for s in spellings}) == 1


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (Kind.PHONE_NUMBER, "06 12 34 56 78", "international prefix"),
        (Kind.PHONE_NUMBER, "+33 12", "not a valid number"),
        (Kind.PHONE_NUMBER, "+not a number", "not a phone number"),
        (Kind.ACCOUNT_HANDLE, "@", "empty"),
        (Kind.ACCOUNT_HANDLE, "@@alice", "more than one leading @"),
        (Kind.GROUP_ID, "   ", "empty"),
        (Kind.USER_ID, "a\x00b", "control characters"),
        (Kind.EMAIL, "alice.example.org", "exactly one @"),
        (Kind.EMAIL, "a@b@example.org", "exactly one @"),
        (Kind.EMAIL, "@example.org", "exactly one @"),
        (Kind.IP_ADDRESS, "203.0.113.256", "not an IPv4 or IPv6"),
        (Kind.IP_ADDRESS, "010.0.0.1", "not an IPv4 or IPv6"),
        (Kind.GROUP_ID, "g" * 257, "longer than 256"),
    ],
)
def test_invalid_values_are_rejected_without_echoing_them(
    kind: SelectorKind, value: str, message: str
) -> None:
    with pytest.raises(InvalidSelector, match=message) as info:
        normalise(kind, value)
    if value.strip():
        assert value.strip() not in str(info.value)


def test_longest_allowed_value_is_accepted() -> None:
    assert normalise(Kind.GROUP_ID, "g" * 256) == "g" * 256


def test_kind_is_part_of_the_hash() -> None:
    assert selector_hash(KEY, Kind.USER_ID, "12345") != selector_hash(KEY, Kind.GROUP_ID, "12345")


def test_different_keys_give_different_hashes() -> None:
    value = normalise(Kind.PHONE_NUMBER, "+33612345678")
    assert selector_hash(KEY, Kind.PHONE_NUMBER, value) != selector_hash(
        OTHER_KEY, Kind.PHONE_NUMBER, value
    )


def test_hash_is_hex_sha256() -> None:
    digest = selector_hash(KEY, Kind.USER_ID, "12345")
    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_hash_refuses_short_keys_and_raw_values() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        selector_hash(b"short", Kind.USER_ID, "12345")
    with pytest.raises(InvalidSelector, match="normalised before hashing"):
        selector_hash(KEY, Kind.ACCOUNT_HANDLE, "@Alice")


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        (Kind.PHONE_NUMBER, "+33612345678", "+33 6 ** ** ** 78"),
        (Kind.PHONE_NUMBER, "+16502530000", "+1 6**-***-**00"),
        (Kind.ACCOUNT_HANDLE, "alicebob", "@al***"),
        (Kind.ACCOUNT_HANDLE, "ab", "@***"),
        (Kind.GROUP_ID, "telegram-group-42", "te***"),
        (Kind.EMAIL, "alice.b@example.org", "al***@ex***.org"),
        (Kind.EMAIL, "alice.b@localhost", "al***@lo***"),
        (Kind.IP_ADDRESS, "203.0.113.7", "203.0.*.*"),
        (Kind.IP_ADDRESS, "2001:db8::1", "2001:db8:*"),
    ],
)
def test_mask_hides_most_of_the_value(kind: SelectorKind, value: str, masked: str) -> None:
    assert mask(kind, value) == masked


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(SelectorKind)), st.text(max_size=40))
def test_normalise_is_idempotent(kind: SelectorKind, value: str) -> None:
    try:
        once = normalise(kind, value)
    except InvalidSelector:
        return
    assert normalise(kind, once) == once
    selector_hash(KEY, kind, once)
