"""What leaves the registry for the coordinating desk: metadata models with no field that could
carry a disclosed value, a selector or a ciphertext."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from services.registry.cases.rules import CaseStatus, CoordinationState, ReleasePolicy
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict


class LinkedCase(Strict):
    case_id: uuid.UUID
    jurisdiction: str


class CaseMetadata(Strict):
    """A case without its selectors or legal basis: only how many selectors it names."""

    id: uuid.UUID
    reference: str
    opened_by: str
    platform: str
    coordinating_jurisdiction: str | None
    lead_case_id: uuid.UUID | None
    status: CaseStatus
    emergency: bool
    release_policy: ReleasePolicy
    coordination_state: CoordinationState | None
    coordination_reason: str | None
    offence_categories: list[str]
    selector_count: int
    links: list[LinkedCase]
    version: int
    created_at: datetime
    updated_at: datetime


class CaseMapCell(Strict):
    jurisdiction: str
    platform: str
    cases: int


class CaseMap(Strict):
    cells: list[CaseMapCell]
    by_jurisdiction: dict[str, int]
    by_platform: dict[str, int]
    total: int


class ResponseMetadata(Strict):
    id: uuid.UUID
    platform: str
    handling_code: HandlingCode
    fanout_state: FanoutState
    emergency: bool
    disclosure_count: int
    issued_at: datetime
    received_at: datetime
    routed_at: datetime | None


class DeliveryMetadata(Strict):
    id: uuid.UUID
    jurisdiction: str
    rule: str
    detail: str
    case_id: uuid.UUID
    state: DeliveryState
    attempts: int
    created_at: datetime
    published_at: datetime | None
    acknowledged_at: datetime | None
    failed_at: datetime | None


class ExclusionMetadata(Strict):
    id: uuid.UUID
    jurisdiction: str
    reason: str
    detail: str
    case_id: uuid.UUID | None
    created_at: datetime


class Fanout(Strict):
    """One response's routing: every recipient and every refusal, with the rule that decided."""

    response: ResponseMetadata
    deliveries: list[DeliveryMetadata]
    exclusions: list[ExclusionMetadata]


class DailyCount(Strict):
    day: date
    responses: int
    requests: int


class AcknowledgementLatency(Strict):
    """How long one jurisdiction takes from publication to acknowledgement, in seconds."""

    jurisdiction: str
    acknowledged: int
    p50_seconds: float
    p95_seconds: float


class StateCount(Strict):
    state: DeliveryState
    deliveries: int


class DeadlineCompliance(Strict):
    """Production orders of one type to one platform: answered within the deadline, after
    it, or still unanswered past it (a clock paused for clarification is not overdue)."""

    platform: str
    request_type: str
    on_time: int
    late: int
    open_overdue: int


class Statistics(Strict):
    """The desk's charts in one answer: counts and durations only, never a disclosed value.

    `requests_recorded` is always true now that the registry records legal requests (kept so
    integrators' dashboards written before keep working); `held_awaiting_release` counts the
    deliveries waiting for their originator's release decision."""

    days: int
    since: datetime
    platform: str | None
    per_day: list[DailyCount]
    requests_recorded: bool
    acknowledgement_latency: list[AcknowledgementLatency]
    deliveries_by_state: list[StateCount]
    deadline_compliance: list[DeadlineCompliance]
    held_awaiting_release: int
