"""The audit chain verifier finds the first edited, deleted or moved entry, and only those."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import audit_chain
from shared.audit_chain import GENESIS_HASH, AuditRecord, verify, verify_head

T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
K = 17


def make_entry(seq: int, prev_hash: str, **overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "seq": seq,
        "at": T0 + timedelta(seconds=seq, microseconds=seq),
        "actor": f"client:fr-pnac-{seq % 3}",
        "action": "delivery.published",
        "subject_type": "delivery",
        "subject_id": f"d-{seq:04d}",
        "details": {"recipient": "DE", "rule": "shared_selector", "attempt": seq % 4},
        "prev_hash": prev_hash,
        **overrides,
    }
    return AuditRecord(**fields, hash=audit_chain.entry_hash(**fields))


def make_chain(n: int, *, first_seq: int = 1, prev_hash: str = GENESIS_HASH) -> list[AuditRecord]:
    chain: list[AuditRecord] = []
    for seq in range(first_seq, first_seq + n):
        chain.append(make_entry(seq, chain[-1].hash if chain else prev_hash))
    return chain


def rehash(record: AuditRecord, **changes: Any) -> AuditRecord:
    """What someone with write access to the table can do: edit and recompute the hash."""
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    fields.update(changes)
    del fields["hash"]
    return AuditRecord(**fields, hash=audit_chain.entry_hash(**fields))


@pytest.fixture(scope="module")
def chain() -> list[AuditRecord]:
    return make_chain(50)


def test_valid_chain_verifies(chain: list[AuditRecord]) -> None:
    result = verify(chain)
    assert result == audit_chain.VerifyResult(
        ok=True,
        checked=50,
        first_broken_seq=None,
        problem=None,
        last_seq=50,
        last_hash=chain[-1].hash,
    )


def test_empty_chain_verifies() -> None:
    assert verify([]) == audit_chain.VerifyResult(True, 0, None, None)


def test_chain_next_matches_entry_hash(chain: list[AuditRecord]) -> None:
    e = chain[K]
    args = (e.seq, e.at, e.actor, e.action, e.subject_type, e.subject_id, e.details)
    assert audit_chain.chain_next(e.prev_hash, *args) == e.hash


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("details", {"recipient": "PL", "rule": "shared_selector", "attempt": K % 4}),
        ("actor", "client:attacker"),
        ("at", T0 + timedelta(seconds=K, microseconds=K + 1)),
        ("action", "delivery.acknowledged"),
        ("subject_type", "response"),
        ("subject_id", "d-9999"),
        ("prev_hash", "f" * 64),
        ("hash", "a" * 64),
    ],
)
def test_edited_entry_is_first_broken(chain: list[AuditRecord], field: str, value: Any) -> None:
    edited = [*chain]
    edited[K - 1] = dataclasses.replace(chain[K - 1], **{field: value})
    result = verify(edited)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, K, K - 1)
    assert result.problem == "hash mismatch (entry edited)"
    assert (result.last_seq, result.last_hash) == (K - 1, chain[K - 2].hash)


def test_edit_with_recomputed_hash_breaks_the_next_link(chain: list[AuditRecord]) -> None:
    edited = [*chain]
    edited[K - 1] = rehash(chain[K - 1], actor="client:attacker")
    result = verify(edited)
    assert result.first_broken_seq == K + 1
    assert result.problem == "prev_hash does not match predecessor (entry deleted or reordered)"


def test_deleted_entry_reports_the_missing_seq(chain: list[AuditRecord]) -> None:
    result = verify(chain[: K - 1] + chain[K:])
    assert (result.ok, result.first_broken_seq) == (False, K)
    assert result.problem == f"sequence gap at {K} (entry deleted)"


def test_deleted_run_reports_its_range(chain: list[AuditRecord]) -> None:
    result = verify(chain[: K - 1] + chain[K + 2 :])
    assert result.first_broken_seq == K
    assert result.problem == f"sequence gap at {K}..{K + 2} (entry deleted)"


def test_deleted_first_entry(chain: list[AuditRecord]) -> None:
    # With start_seq the gap is named; without it the broken link shows one entry later.
    assert verify(chain[1:], start_seq=1).first_broken_seq == 1
    result = verify(chain[1:])
    assert result.first_broken_seq == 2
    assert result.problem is not None
    assert "prev_hash" in result.problem


def test_deletion_with_renumbered_suffix_is_detected(chain: list[AuditRecord]) -> None:
    renumbered = [dataclasses.replace(e, seq=e.seq - 1) for e in chain[K:]]
    assert verify(chain[: K - 1] + renumbered).first_broken_seq == K


def test_swapped_entries_in_stream(chain: list[AuditRecord]) -> None:
    swapped = [*chain]
    swapped[K - 1], swapped[K] = swapped[K], swapped[K - 1]
    result = verify(swapped)
    assert (result.ok, result.first_broken_seq) == (False, K)


def test_swapped_contents_keeping_seq(chain: list[AuditRecord]) -> None:
    a, b = chain[K - 1], chain[K]
    swapped = [*chain]
    swapped[K - 1] = dataclasses.replace(b, seq=a.seq)
    swapped[K] = dataclasses.replace(a, seq=b.seq)
    result = verify(swapped)
    assert (result.first_broken_seq, result.problem) == (K, "hash mismatch (entry edited)")


def test_replayed_entry_is_detected(chain: list[AuditRecord]) -> None:
    result = verify([*chain[:K], chain[K - 1], *chain[K:]])
    assert result.first_broken_seq == K
    assert result.problem == f"seq {K} after {K} (entries reordered)"


def test_unhashable_entry_is_reported_not_raised(chain: list[AuditRecord]) -> None:
    broken = [*chain]
    broken[K - 1] = dataclasses.replace(chain[K - 1], details={"amount": 1.5})
    result = verify(broken)
    assert result.first_broken_seq == K
    assert result.problem is not None
    assert result.problem.startswith("entry cannot be hashed")


def test_truncated_tail_passes_chaining_but_not_the_anchor(chain: list[AuditRecord]) -> None:
    assert verify(chain[:40]).ok  # documented limit of chaining alone
    result = verify_head(chain[:40], expected_head_hash=chain[-1].hash, expected_count=50)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 41, 40)
    assert result.problem == "log truncated: 40 entries, anchor covers 50 (tail deleted)"


def test_fully_truncated_log_fails_the_anchor(chain: list[AuditRecord]) -> None:
    result = verify_head([], expected_head_hash=chain[-1].hash, expected_count=50, start_seq=1)
    assert (result.ok, result.first_broken_seq) == (False, 1)


def test_rewritten_history_passes_chaining_but_not_the_anchor(chain: list[AuditRecord]) -> None:
    forged = chain[: K - 1]
    forged.append(rehash(chain[K - 1], actor="client:attacker"))
    for original in chain[K:]:
        forged.append(rehash(original, prev_hash=forged[-1].hash))
    assert verify(forged).ok
    result = verify_head(forged, expected_head_hash=chain[-1].hash, expected_count=50)
    assert (result.ok, result.first_broken_seq) == (False, 50)
    assert result.problem == "entry does not match the anchored head (history rewritten)"


def test_anchor_taken_earlier_accepts_later_growth(chain: list[AuditRecord]) -> None:
    result = verify_head(chain, expected_head_hash=chain[39].hash, expected_count=40)
    assert (result.ok, result.checked) == (True, 50)


def test_anchor_still_reports_breaks_before_the_head(chain: list[AuditRecord]) -> None:
    damaged = chain[: K - 1] + chain[K:]
    result = verify_head(damaged, expected_head_hash=chain[-1].hash, expected_count=50)
    assert result.first_broken_seq == K


def test_empty_anchor_must_match_start() -> None:
    assert verify_head([], expected_head_hash=GENESIS_HASH, expected_count=0).ok
    assert not verify_head([], expected_head_hash="1" * 64, expected_count=0).ok


def test_resume_from_checkpoint(chain: list[AuditRecord]) -> None:
    first = verify(chain[:20])
    assert first.last_seq == 20
    rest = verify(chain[20:], start_prev_hash=first.last_hash, start_seq=first.last_seq + 1)
    assert (rest.ok, rest.checked, rest.last_seq, rest.last_hash) == (True, 30, 50, chain[-1].hash)


def test_resume_detects_deletion_right_after_checkpoint(chain: list[AuditRecord]) -> None:
    result = verify(chain[21:], start_prev_hash=chain[19].hash, start_seq=21)
    assert result.first_broken_seq == 21


def test_resume_from_wrong_checkpoint_fails(chain: list[AuditRecord]) -> None:
    result = verify(chain[20:], start_prev_hash=chain[18].hash, start_seq=21)
    assert (result.first_broken_seq, result.checked) == (21, 0)
    assert result.problem == "prev_hash does not match predecessor (entry deleted or reordered)"


def test_verify_is_lazy_and_stops_at_the_first_break(chain: list[AuditRecord]) -> None:
    pulled: list[int] = []
    damaged = [*chain]
    damaged[K - 1] = dataclasses.replace(chain[K - 1], actor="client:attacker")

    def cursor() -> Iterator[AuditRecord]:
        for batch_start in range(0, len(damaged), 8):
            for record in damaged[batch_start : batch_start + 8]:
                pulled.append(record.seq)
                yield record

    assert verify(cursor()).first_broken_seq == K
    assert pulled == list(range(1, K + 1))


CANONICAL_ARGS: dict[str, Any] = {
    "seq": 7,
    "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    "actor": "client:fr-pnac",
    "action": "case.registered",
    "subject_type": "case",
    "subject_id": "c-1",
    "details": {"b": [1, True, None], "a": 'Zoë "x"\n'},
    "prev_hash": GENESIS_HASH,
}


def canonical(**changes: Any) -> bytes:
    return audit_chain.canonical_bytes(**{**CANONICAL_ARGS, **changes})


GOLDEN_BYTES = (
    '{"action":"case.registered","actor":"client:fr-pnac",'
    '"at":"2025-01-02T03:04:05.000000Z","details":{"a":"Zoë \\"x\\"\\n","b":[1,true,null]},'
    '"prev_hash":"' + "0" * 64 + '","seq":7,"subject_id":"c-1","subject_type":"case"}'
).encode()
GOLDEN_HASH = "14e07ad6cbcbcceae798a9e9e6b3f88a8648719e718e28bbd9897e6e07b68e6d"


def test_canonical_bytes_golden() -> None:
    # Stored chains depend on these exact bytes; a change here breaks every existing log.
    assert canonical() == GOLDEN_BYTES
    assert audit_chain.entry_hash(**CANONICAL_ARGS) == GOLDEN_HASH


def test_canonical_bytes_ignore_key_order() -> None:
    shuffled = {"a": CANONICAL_ARGS["details"]["a"], "b": [1, True, None]}
    nested_1 = {"outer": {"y": 1, "x": {"q": "1", "p": "2"}}}
    nested_2 = {"outer": {"x": {"p": "2", "q": "1"}, "y": 1}}
    assert canonical(details=shuffled) == canonical()
    assert canonical(details=nested_1) == canonical(details=nested_2)


def test_canonical_bytes_keep_non_ascii_as_utf8() -> None:
    text = "Łódź — 東京 — Ελλάδα — 😀"
    raw = canonical(actor=text, details={"note": text})
    assert raw.count(text.encode("utf-8")) == 2
    assert b"\\u" not in raw


def test_keys_sort_by_utf16_code_units() -> None:
    # RFC 8785: U+1F600 (surrogates D83D DE00) sorts before U+E000, unlike code point order.
    raw = canonical(details={"\ue000": 1, "\U0001f600": 2})
    assert raw.index("\U0001f600".encode()) < raw.index("\ue000".encode())


def test_timestamps_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    same_instant = datetime(2025, 1, 2, 4, 4, 5, tzinfo=paris)
    assert canonical(at=same_instant) == canonical()
    assert b'"at":"2025-01-02T03:04:05.000001Z"' in canonical(
        at=datetime(2025, 1, 2, 3, 4, 5, 1, tzinfo=UTC)
    )


def test_bool_and_int_hash_differently() -> None:
    assert canonical(details={"v": True}) != canonical(details={"v": 1})


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"details": {"amount": 1.0}}, ValueError, "floats are not allowed"),
        ({"details": {"n": 2**53}}, ValueError, "outside"),
        ({"details": {"n": -(2**53)}}, ValueError, "outside"),
        ({"details": {1: "x"}}, TypeError, "keys must be str"),
        ({"details": {"at": T0}}, TypeError, "datetime is not a JSON value"),
        ({"details": {"s": "\ud800"}}, ValueError, "lone surrogate"),
        ({"details": {"\ud800": "s"}}, ValueError, "lone surrogate"),
        ({"details": ["not", "a", "mapping"]}, TypeError, "details must be a mapping"),
        ({"at": datetime(2025, 1, 2, 3, 4, 5)}, ValueError, "timezone-aware"),
        ({"at": "2025-01-02T03:04:05Z"}, TypeError, "must be a datetime"),
        ({"seq": 0}, ValueError, "positive integer"),
        ({"seq": True}, ValueError, "positive integer"),
        ({"prev_hash": "F" * 64}, ValueError, "lowercase hex"),
        ({"prev_hash": "0" * 63}, ValueError, "lowercase hex"),
        ({"actor": None}, TypeError, "actor must be a str"),
    ],
)
def test_canonical_bytes_refuse_ambiguous_input(
    changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        canonical(**changes)


def test_nested_error_names_the_path() -> None:
    with pytest.raises(ValueError, match=r"\$\.details\.rows\[1\]\.score"):
        canonical(details={"rows": [{"score": 1}, {"score": 0.5}]})


_ANY_CHAR = st.one_of(
    st.characters(),
    st.sampled_from('"\\\x00\x1f\x7f\u2028'),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
)


@given(st.text(alphabet=_ANY_CHAR))
def test_strings_encode_as_json_does_or_are_refused(text: str) -> None:
    """The shortcut for plain strings gives exactly what the escaping path gives."""
    try:
        expected = json.dumps(text.encode("utf-8").decode("utf-8"), ensure_ascii=False)
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="lone surrogate"):
            audit_chain._string(text, "$")
        return
    assert audit_chain._string(text, "$") == expected


_KEYS = st.one_of(st.text(max_size=4), st.text(alphabet=_ANY_CHAR, max_size=3))
_JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**60), max_value=2**60),
        st.integers(min_value=-(2**53) - 2, max_value=-(2**53) + 2),
        st.integers(min_value=2**53 - 2, max_value=2**53 + 2),
        st.floats(allow_nan=False),
        st.text(alphabet=_ANY_CHAR, max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)


def _general(**changes: Any) -> bytes:
    """The canonical form by the general path alone, bypassing the orjson shortcut."""
    args = {**CANONICAL_ARGS, **changes}
    entry = {**args, "at": audit_chain._timestamp(args["at"])}
    return audit_chain._canonical(entry, "$").encode("utf-8")


@given(st.dictionaries(_KEYS, _JSONISH, max_size=4))
def test_the_shortcut_gives_the_general_paths_bytes_or_its_refusal(details: dict[str, Any]) -> None:
    try:
        expected = _general(details=details)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            canonical(details=details)
        return
    assert canonical(details=details) == expected


def test_a_routing_decision_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    decisions = [
        {"jurisdiction": f"J{i:02d}", "included": i < 5, "reason": "standing", "case_id": None}
        for i in range(43)
    ]
    expected = canonical(details={"decisions": decisions})

    def general(value: Any, path: str) -> str:
        raise AssertionError("the general path ran")

    monkeypatch.setattr(audit_chain, "_canonical", general)
    assert canonical(details={"decisions": decisions}) == expected
    with pytest.raises(AssertionError):
        canonical(details={"score": 1.5})
