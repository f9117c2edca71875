"""Pure rules of legal requests (Regulation (EU) 2023/1543): types, states, transitions, clocks.

No I/O here: the service loads a request, asks these rules whether an action may happen and
when its timers fall due, and writes what they decide. Every refusal and every date is thus
testable without a database, and the state machine is checked by a property test.

A clock runs on *active* time: a clarification stops the platform's response clock, so every
timer of that window falls due later by exactly the paused time. Windows only ever grow (a
pause adds time, an extension adds time), so no deadline moves backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.errors import Conflict, ValidationFailed

Clock = Callable[[], datetime]
"""Where "now" comes from; tests inject one instead of sleeping out a deadline."""


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class RequestType(StrEnum):
    PRODUCTION = "production"
    EMERGENCY_PRODUCTION = "emergency_production"
    PRESERVATION = "preservation"


class RequestState(StrEnum):
    ISSUED = "issued"
    AWAITING_ENFORCING_REVIEW = "awaiting_enforcing_review"
    ACKNOWLEDGED = "acknowledged"
    CLARIFICATION_REQUESTED = "clarification_requested"
    CLARIFIED = "clarified"
    PRESERVED = "preserved"
    ANSWERED = "answered"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    LAPSED = "lapsed"
    ENDED = "ended"
    OBJECTED = "objected"


class ReviewState(StrEnum):
    """The enforcing state's side: whether it must review and what it decided."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    NO_GROUNDS = "no_grounds"
    WINDOW_CLOSED = "window_closed"
    OBJECTED = "objected"


class DataCategory(StrEnum):
    SUBSCRIBER = "subscriber"
    IDENTIFICATION = "identification"
    TRAFFIC = "traffic"
    CONTENT = "content"


class RefusalGround(StrEnum):
    DE_FACTO_IMPOSSIBILITY = "de_facto_impossibility"
    DATA_NOT_HELD = "data_not_held"
    FORCE_MAJEURE = "force_majeure"
    CONFLICT_WITH_THIRD_COUNTRY_LAW = "conflict_with_third_country_law"
    OTHER = "other"


class ClarificationGround(StrEnum):
    """The grounds of Annex III of the Regulation."""

    INCOMPLETE = "incomplete"
    MANIFEST_ERRORS = "manifest_errors"
    INSUFFICIENT_INFORMATION = "insufficient_information"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    REQUEST_CLARIFICATION = "request_clarification"
    CLARIFY = "clarify"
    REFUSE = "refuse"
    CONFIRM_PRESERVED = "confirm_preserved"
    ANSWER = "answer"
    END = "end"
    WITHDRAW = "withdraw"
    LAPSE = "lapse"
    OBJECT = "object"


class TimerKind(StrEnum):
    """What a timer measures: the platform's answer, the preservation, the enforcing review."""

    RESPONSE = "response"
    PRESERVATION = "preservation"
    OBJECTION = "objection"


class TimerPoint(StrEnum):
    REMINDER_50 = "reminder_50"
    REMINDER_80 = "reminder_80"
    EXPIRY = "expiry"


REQUEST_TYPES = tuple(RequestType)
REQUEST_STATES = tuple(RequestState)
REVIEW_STATES = tuple(ReviewState)
TIMER_KINDS = tuple(TimerKind)
TIMER_POINTS = tuple(TimerPoint)

TERMINAL = frozenset(
    {
        RequestState.ANSWERED,
        RequestState.REFUSED,
        RequestState.WITHDRAWN,
        RequestState.LAPSED,
        RequestState.ENDED,
        RequestState.OBJECTED,
    }
)
_UNANSWERED = frozenset(
    {
        RequestState.ISSUED,
        RequestState.AWAITING_ENFORCING_REVIEW,
        RequestState.ACKNOWLEDGED,
        RequestState.CLARIFIED,
    }
)
_OPEN = frozenset(set(RequestState) - TERMINAL)
CLOCK_RUNNING = _UNANSWERED
"""States in which a production's answer clock runs (a clarification request pauses it):
an open request in one of these past its deadline is overdue."""
_PRODUCTIONS = frozenset({RequestType.PRODUCTION, RequestType.EMERGENCY_PRODUCTION})
_ALL = frozenset(RequestType)
_PRESERVATION = frozenset({RequestType.PRESERVATION})

# action -> (types it applies to, states it may start from, state it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[RequestType], frozenset[RequestState], RequestState]] = {
    Action.ACKNOWLEDGE: (
        _ALL,
        frozenset({RequestState.ISSUED, RequestState.AWAITING_ENFORCING_REVIEW}),
        RequestState.ACKNOWLEDGED,
    ),
    Action.REQUEST_CLARIFICATION: (_ALL, _UNANSWERED, RequestState.CLARIFICATION_REQUESTED),
    Action.CLARIFY: (
        _ALL,
        frozenset({RequestState.CLARIFICATION_REQUESTED}),
        RequestState.CLARIFIED,
    ),
    Action.REFUSE: (_ALL, _UNANSWERED, RequestState.REFUSED),
    Action.CONFIRM_PRESERVED: (_PRESERVATION, _UNANSWERED, RequestState.PRESERVED),
    Action.ANSWER: (_PRODUCTIONS, _UNANSWERED, RequestState.ANSWERED),
    Action.END: (_PRESERVATION, _OPEN, RequestState.ENDED),
    Action.WITHDRAW: (_ALL, _OPEN, RequestState.WITHDRAWN),
    Action.LAPSE: (_PRESERVATION, _OPEN, RequestState.LAPSED),
    Action.OBJECT: (_ALL, _OPEN, RequestState.OBJECTED),
}


def next_state(kind: RequestType, state: RequestState, action: Action) -> RequestState:
    """The state `action` leads to, or Conflict (409) when it may not happen now."""
    types, sources, target = TRANSITIONS[action]
    if kind not in types:
        raise Conflict(f"{action.value} does not apply to a {kind.value} request")
    if state not in sources:
        raise Conflict(f"a request that is {state.value} cannot {action.value.replace('_', ' ')}")
    return target


def needs_validation(categories: set[DataCategory]) -> bool:
    """Traffic and content data need a validating judicial authority (Art. 4)."""
    return bool(categories & {DataCategory.TRAFFIC, DataCategory.CONTENT})


def needs_enforcing_review(categories: set[DataCategory], issuer: str, enforcing: str) -> bool:
    """Traffic and content requests to another state's legal representative are notified."""
    return needs_validation(categories) and issuer != enforcing


def check_issue(*, categories: set[DataCategory], validated_by: str | None) -> None:
    """Refuse a request the Regulation would not let leave the issuing state."""
    if needs_validation(categories) and not validated_by:
        raise ValidationFailed(
            "traffic and content data need validated_by: a judge, court or investigating judge"
        )


RESPONSE_WINDOW = {
    RequestType.PRODUCTION: timedelta(days=10),
    RequestType.EMERGENCY_PRODUCTION: timedelta(hours=8),
}
PRESERVATION_WINDOW = timedelta(days=60)
PRESERVATION_EXTENSION = timedelta(days=30)
OBJECTION_WINDOW = {
    RequestType.PRODUCTION: timedelta(days=10),
    RequestType.EMERGENCY_PRODUCTION: timedelta(hours=96),
    RequestType.PRESERVATION: timedelta(days=10),
}
FRACTIONS = {TimerPoint.REMINDER_50: 0.5, TimerPoint.REMINDER_80: 0.8, TimerPoint.EXPIRY: 1.0}
REMINDER_THRESHOLDS = {TimerPoint.REMINDER_50: "50", TimerPoint.REMINDER_80: "80"}
"""The reminder points as the `threshold` label of the reminders counter (percent of a window)."""


def clock_label(kind: TimerKind, request_type: RequestType) -> str:
    """How metrics name a clock: the request type for the answer's window (`production`,
    `emergency_production`), else the window itself (`preservation`, `objection`)."""
    return request_type.value if kind is TimerKind.RESPONSE else kind.value


BREACH_LABELS = tuple(t.value for t in RESPONSE_WINDOW)
"""Every clock that can be breached: only an answer's window (a preservation lapses, an
objection window closes), so the breaches counter can show each at 0 from the start."""
REMINDER_LABELS = (*BREACH_LABELS, TimerKind.PRESERVATION.value, TimerKind.OBJECTION.value)
"""Every clock that sends reminders, for the same reason."""


@dataclass(frozen=True, slots=True)
class Window:
    """A clock: started at `start`, `length` long in active time, `paused` so far."""

    kind: TimerKind
    start: datetime
    length: timedelta
    paused: timedelta = timedelta(0)

    def due(self, point: TimerPoint) -> datetime:
        """When `point` of this window falls due, every pause so far included."""
        return self.start + self.length * FRACTIONS[point] + self.paused

    @property
    def deadline(self) -> datetime:
        return self.due(TimerPoint.EXPIRY)


def windows(
    *,
    kind: RequestType,
    received_at: datetime,
    paused: timedelta,
    extended: bool,
    review: ReviewState,
) -> list[Window]:
    """The clocks a request runs: its answer or preservation, and the enforcing review."""
    out: list[Window] = []
    if kind is RequestType.PRESERVATION:
        length = PRESERVATION_WINDOW + (PRESERVATION_EXTENSION if extended else timedelta(0))
        out.append(Window(TimerKind.PRESERVATION, received_at, length))
    else:
        out.append(Window(TimerKind.RESPONSE, received_at, RESPONSE_WINDOW[kind], paused))
    if review is not ReviewState.NOT_REQUIRED:
        out.append(Window(TimerKind.OBJECTION, received_at, OBJECTION_WINDOW[kind]))
    return out


def check_extend(kind: RequestType, state: RequestState, extended: bool) -> None:
    """A preservation may be extended once, while it runs."""
    if kind is not RequestType.PRESERVATION:
        raise Conflict("only a preservation can be extended")
    if extended:
        raise Conflict("a preservation can be extended only once")
    if state in TERMINAL:
        raise Conflict(f"a request that is {state.value} cannot be extended")


def objection_open(review: ReviewState, window: Window | None, now: datetime) -> bool:
    """Whether the enforcing state may still object, so a response must stay held."""
    return review is ReviewState.PENDING and window is not None and now < window.deadline


class ObjectionDecision(StrEnum):
    OBJECT = "object"
    NO_GROUNDS = "no_grounds"
