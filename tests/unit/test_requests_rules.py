"""The legal request state machine and its clocks, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.requests import rules
from services.registry.requests.rules import (
    TERMINAL,
    Action,
    DataCategory,
    RequestState,
    RequestType,
    ReviewState,
    TimerKind,
    TimerPoint,
)
from shared.errors import Conflict, ValidationFailed

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def test_emergency_answer_window_is_eight_hours_and_objection_96() -> None:
    wins = rules.windows(
        kind=RequestType.EMERGENCY_PRODUCTION,
        received_at=T0,
        paused=timedelta(0),
        extended=False,
        review=ReviewState.PENDING,
    )
    by_kind = {w.kind: w for w in wins}
    assert by_kind[TimerKind.RESPONSE].deadline == T0 + timedelta(hours=8)
    assert by_kind[TimerKind.RESPONSE].due(TimerPoint.REMINDER_50) == T0 + timedelta(hours=4)
    assert by_kind[TimerKind.OBJECTION].deadline == T0 + timedelta(hours=96)


def test_preservation_is_sixty_days_and_ninety_when_extended() -> None:
    def deadline(extended: bool) -> datetime:
        [w] = rules.windows(
            kind=RequestType.PRESERVATION,
            received_at=T0,
            paused=timedelta(0),
            extended=extended,
            review=ReviewState.NOT_REQUIRED,
        )
        return w.deadline

    assert deadline(False) == T0 + timedelta(days=60)
    assert deadline(True) == T0 + timedelta(days=90)


def test_a_pause_moves_every_point_by_exactly_the_paused_time() -> None:
    plain = rules.Window(TimerKind.RESPONSE, T0, timedelta(days=10))
    paused = rules.Window(TimerKind.RESPONSE, T0, timedelta(days=10), timedelta(hours=5))
    for point in TimerPoint:
        assert paused.due(point) - plain.due(point) == timedelta(hours=5)


def test_traffic_needs_validation_and_review_across_states() -> None:
    with pytest.raises(ValidationFailed):
        rules.check_issue(categories={DataCategory.TRAFFIC}, validated_by=None)
    rules.check_issue(categories={DataCategory.SUBSCRIBER}, validated_by=None)
    assert rules.needs_enforcing_review({DataCategory.CONTENT}, "DE", "IE")
    assert not rules.needs_enforcing_review({DataCategory.CONTENT}, "IE", "IE")
    assert not rules.needs_enforcing_review({DataCategory.SUBSCRIBER}, "DE", "IE")


def test_invalid_transitions_are_conflicts() -> None:
    with pytest.raises(Conflict):
        rules.next_state(RequestType.PRODUCTION, RequestState.ANSWERED, Action.ACKNOWLEDGE)
    with pytest.raises(Conflict):
        rules.next_state(RequestType.PRESERVATION, RequestState.ISSUED, Action.ANSWER)
    with pytest.raises(Conflict):
        rules.check_extend(RequestType.PRESERVATION, RequestState.PRESERVED, extended=True)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(RequestType),
    actions=st.lists(st.sampled_from(Action), max_size=12),
)
def test_no_transition_leaves_a_terminal_state(kind: RequestType, actions: list[Action]) -> None:
    state = RequestState.ISSUED
    for action in actions:
        try:
            after = rules.next_state(kind, state, action)
        except Conflict:
            continue
        assert state not in TERMINAL, (state, action)
        state = after


Step = st.one_of(
    st.tuples(st.just("pause"), st.integers(min_value=0, max_value=10**7)),
    st.tuples(st.just("extend"), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(RequestType), steps=st.lists(Step, max_size=10))
def test_deadlines_never_move_backwards(kind: RequestType, steps: list[tuple[str, int]]) -> None:
    paused, extended = timedelta(0), False

    def dues() -> dict[tuple[TimerKind, TimerPoint], datetime]:
        wins = rules.windows(
            kind=kind, received_at=T0, paused=paused, extended=extended, review=ReviewState.PENDING
        )
        return {(w.kind, p): w.due(p) for w in wins for p in TimerPoint}

    before = dues()
    for step, seconds in steps:
        if step == "pause":
            paused += timedelta(seconds=seconds)
        else:
            extended = True
        after = dues()
        assert all(after[k] >= before[k] for k in before)
        before = after
