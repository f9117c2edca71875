"""Event contracts: one pydantic model per message type, named in the past tense, with its
topic family and schema version beside it. Every producer and consumer imports them from here.

Events carry identifiers and metadata, never disclosed personal data: disclosures travel only as
a JWE sealed for one recipient (`ResponseDelivered.sealed_disclosures`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Topic = Literal["cases", "responses", "deliveries", "dlq", "inbox", "requests", "platform"]


class Event(BaseModel):
    """Base for every message; `TYPE` becomes the CloudEvents `ce_type`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]
    SCHEMA_VERSION: ClassVar[int] = 1
    # further channels the same record is published on (a request's events reach the platform)
    ALSO: ClassVar[tuple[Topic, ...]] = ()

    @classmethod
    def channels(cls) -> tuple[Topic, ...]:
        """Every topic family this event is published on, its own first."""
        return (cls.TOPIC, *cls.ALSO)


class CaseRegistered(Event):
    """A jurisdiction registered a case; metadata only (no selectors)."""

    TYPE = "eu.caseshare.case.registered.v1"
    TOPIC = "cases"

    case_id: uuid.UUID
    reference: str
    opened_by: str
    platform: str
    coordinating_jurisdiction: str | None
    lead_case_id: uuid.UUID | None
    emergency: bool
    registered_at: datetime


class CaseStatusChanged(Event):
    """A case moved between open, suspended and closed."""

    TYPE = "eu.caseshare.case.status-changed.v1"
    TOPIC = "cases"

    case_id: uuid.UUID
    opened_by: str
    status: str
    version: int
    changed_at: datetime


class ResponseReceived(Event):
    """A platform's cooperation response was accepted; the router fans it out."""

    TYPE = "eu.caseshare.response.received.v1"
    TOPIC = "responses"

    response_id: uuid.UUID
    platform: str
    handling_code: str
    emergency: bool
    received_at: datetime


class ResponseDelivered(Event):
    """What a recipient finds on its inbox topic: one delivery, disclosures sealed for it."""

    TYPE = "eu.caseshare.response.delivered.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    case_reference: str
    platform: str
    handling_code: str
    rule: str
    emergency: bool
    issued_at: datetime
    disclosure_count: int
    handling_conditions: str | None
    recipient_kid: str | None
    sealed_disclosures: str | None


class CaseLinkFound(Event):
    """Hit/no-hit: an open case of `other_jurisdiction` on the same platform shares a selector
    with one of the recipient's cases. Neither side's case id nor reference: those are
    exchanged (`CaseLinkDisclosed`) only once both openers consent to the link."""

    TYPE = "eu.caseshare.case.link-found.v2"
    TOPIC = "inbox"
    SCHEMA_VERSION = 2

    link_id: uuid.UUID
    jurisdiction: str
    other_jurisdiction: str
    platform: str
    found_at: datetime


class CaseLinkDisclosed(Event):
    """Both openers consented to a link: each learns the other's case reference."""

    TYPE = "eu.caseshare.case.link-disclosed.v1"
    TOPIC = "inbox"

    link_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    case_reference: str
    other_jurisdiction: str
    other_case_reference: str
    platform: str
    disclosed_at: datetime


class CoordinationRequested(Event):
    """Told to a member named as coordinator: a case waits for it to accept or decline."""

    TYPE = "eu.caseshare.coordination.requested.v1"
    TOPIC = "inbox"

    case_id: uuid.UUID
    jurisdiction: str  # the named coordinator, whose inbox this is on
    opened_by: str
    platform: str
    requested_at: datetime


class CoordinationDecided(Event):
    """The coordinator accepted, declined or withdrew; told to the case's opener."""

    TYPE = "eu.caseshare.coordination.decided.v1"
    TOPIC = "inbox"

    case_id: uuid.UUID
    jurisdiction: str  # the case's opener, whose inbox this is on
    coordinator: str
    coordination_state: str
    case_status: str
    reason: str | None
    decided_at: datetime


class ReleaseRequested(Event):
    """Told to the originator (`jurisdiction`): a delivery to `recipient` is held until it
    decides (sent again, with `reminder` true, shortly before the hold lapses)."""

    TYPE = "eu.caseshare.release.requested.v1"
    TOPIC = "inbox"

    release_id: uuid.UUID
    response_id: uuid.UUID
    requesting_case_id: uuid.UUID
    jurisdiction: str
    recipient: str
    handling_code: str
    lapses_at: datetime
    reminder: bool
    requested_at: datetime


class DeliveryPublished(Event):
    """The fan-out log: a delivery reached its recipient's inbox topic."""

    TYPE = "eu.caseshare.delivery.published.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    rule: str
    attempt: int
    published_at: datetime


class DeliveryAcknowledged(Event):
    """The recipient confirmed retrieval; this closes the delivery."""

    TYPE = "eu.caseshare.delivery.acknowledged.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    conditions_accepted: bool
    acknowledged_at: datetime


class JurisdictionExcluded(Event):
    """A jurisdiction was considered for a response and refused, with the reason.

    No longer emitted (since `JurisdictionsExcluded`, one event for all of a decision's
    refusals); kept so that records already on the topic still validate and stream."""

    TYPE = "eu.caseshare.delivery.excluded.v1"
    TOPIC = "deliveries"

    exclusion_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    reason: str
    detail: str
    decided_at: datetime


class ExcludedJurisdiction(BaseModel):
    """One jurisdiction refused in a `JurisdictionsExcluded`, with the reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclusion_id: uuid.UUID
    jurisdiction: str
    reason: str
    detail: str


class JurisdictionsExcluded(Event):
    """The jurisdictions refused by one decision about a response, with their reasons: every
    one considered and refused when the response was routed, or the one a release withheld
    or let lapse. Replaces one `JurisdictionExcluded` per jurisdiction (about 38 a response),
    which is no longer emitted; its schema stays for the records already on the topic."""

    TYPE = "eu.caseshare.delivery.jurisdictions-excluded.v1"
    TOPIC = "deliveries"

    response_id: uuid.UUID
    decided_at: datetime
    exclusions: list[ExcludedJurisdiction]


class ReleaseDecided(Event):
    """The fan-out log: a held delivery was released or withheld by the originator (or by
    the case's release policy), or lapsed undecided."""

    TYPE = "eu.caseshare.release.decided.v1"
    TOPIC = "deliveries"

    release_id: uuid.UUID
    delivery_id: uuid.UUID
    response_id: uuid.UUID
    originator: str
    jurisdiction: str
    state: str
    basis: str
    decided_at: datetime


class DeliveryFailed(Event):
    """Alert: a delivery stayed unacknowledged through every re-publication attempt."""

    TYPE = "eu.caseshare.delivery.failed.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    attempts: int
    failed_at: datetime


class WebhookEndpointChanged(Event):
    """A jurisdiction's webhook endpoint was registered, approved or deleted."""

    TYPE = "eu.caseshare.webhook.endpoint-changed.v1"
    TOPIC = "deliveries"

    endpoint_id: uuid.UUID
    jurisdiction: str
    state: str
    changed_by: str
    changed_at: datetime


class WebhookEndpointDisabled(Event):
    """Alert: a webhook endpoint kept failing and is not called until an admin approves it."""

    TYPE = "eu.caseshare.webhook.endpoint-disabled.v1"
    TOPIC = "deliveries"

    endpoint_id: uuid.UUID
    jurisdiction: str
    consecutive_failures: int
    failing_since: datetime
    disabled_at: datetime


class RequestChanged(Event):
    """Base of a legal request's lifecycle events: what changed, on which request, for whom.

    Each goes on `requests` (the issuing authority and the coordination desk follow it) and on
    the addressee platform's own topic; free texts stay behind the REST API."""

    TOPIC = "requests"
    ALSO: ClassVar[tuple[Topic, ...]] = ("platform",)

    request_id: uuid.UUID
    case_id: uuid.UUID
    request_type: str
    platform: str
    issued_by: str
    enforcing_jurisdiction: str
    state: str
    changed_at: datetime


class IssuerNotice(RequestChanged):
    """A step the issuing authority must hear of even if it reads only its inbox over Kafka:
    also published on the inbox of `jurisdiction`, the issuing state."""

    ALSO: ClassVar[tuple[Topic, ...]] = ("platform", "inbox")

    jurisdiction: str


class RequestIssued(RequestChanged):
    """An authority issued an order to a platform through the hub."""

    TYPE = "eu.caseshare.request.issued.v1"

    categories: list[str]
    deadline_at: datetime
    follows_request_id: uuid.UUID | None


class RequestAcknowledged(RequestChanged):
    """The platform acknowledged receipt of the order."""

    TYPE = "eu.caseshare.request.acknowledged.v1"


class ClarificationRequested(IssuerNotice):
    """The platform asked for clarification (Annex III); the response clock stopped."""

    TYPE = "eu.caseshare.request.clarification-requested.v1"

    ground: str


class RequestClarified(RequestChanged):
    """The authority clarified; the response clock runs again, later by the paused time."""

    TYPE = "eu.caseshare.request.clarified.v1"

    deadline_at: datetime


class RequestRefused(IssuerNotice):
    """The platform refused the order on an enumerated ground."""

    TYPE = "eu.caseshare.request.refused.v1"

    ground: str


class PreservationConfirmed(RequestChanged):
    """The platform confirmed it preserves the data until the date given."""

    TYPE = "eu.caseshare.request.preservation-confirmed.v1"

    preserved_until: datetime


class PreservationExtended(RequestChanged):
    """The authority extended a preservation once, by 30 days."""

    TYPE = "eu.caseshare.request.preservation-extended.v1"

    deadline_at: datetime


class RequestAnswered(RequestChanged):
    """A response answering the order was accepted."""

    TYPE = "eu.caseshare.request.answered.v1"

    response_id: uuid.UUID


class PreservationEnded(RequestChanged):
    """The production order that followed this preservation was answered."""

    TYPE = "eu.caseshare.request.preservation-ended.v1"

    production_request_id: uuid.UUID


class RequestWithdrawn(RequestChanged):
    """The issuing authority withdrew the order."""

    TYPE = "eu.caseshare.request.withdrawn.v1"


class RequestLapsed(RequestChanged):
    """A preservation ran out without a production order answered."""

    TYPE = "eu.caseshare.request.lapsed.v1"


class RequestObjected(IssuerNotice):
    """The enforcing state raised grounds for refusal; any held response is never delivered."""

    TYPE = "eu.caseshare.request.objected.v1"

    withheld_responses: int


class ReviewConcluded(RequestChanged):
    """The enforcing state's review ended without objection: no grounds, or the window closed."""

    TYPE = "eu.caseshare.request.review-concluded.v1"

    outcome: str
    released_responses: int


class DeadlineReminderDue(IssuerNotice):
    """50% or 80% of a window has passed."""

    TYPE = "eu.caseshare.request.deadline-reminder-due.v1"

    kind: str
    point: str
    deadline_at: datetime


class DeadlineBreached(IssuerNotice):
    """A window expired: the platform did not answer in time (`kind` says which window)."""

    TYPE = "eu.caseshare.request.deadline-breached.v1"

    kind: str
    deadline_at: datetime


class RequestReviewNotified(Event):
    """On the enforcing state's inbox: a traffic or content order it may object to."""

    TYPE = "eu.caseshare.request.review-notified.v1"
    TOPIC = "inbox"

    request_id: uuid.UUID
    jurisdiction: str
    request_type: str
    platform: str
    issued_by: str
    categories: list[str]
    validated_by: str
    objection_deadline_at: datetime
    notified_at: datetime


class ResponseRecalled(Event):
    """The platform or the originator recalled a response; its deliveries follow."""

    TYPE = "eu.caseshare.response.recalled.v1"
    TOPIC = "deliveries"

    response_id: uuid.UUID
    recalled_by: str  # "platform" or "originator"
    withdrawn: int
    deletion_requested: int
    recalled_at: datetime


class DeliveryRecalled(Event):
    """On the recipient's inbox: a delivery was recalled. Unacknowledged, it is withdrawn (the
    hub dropped its ciphertext); acknowledged, `deletion_required` asks the recipient to delete
    it and confirm with `POST /v1/inbox/{delivery_id}/deletion-confirmation`."""

    TYPE = "eu.caseshare.delivery.recalled.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    deletion_required: bool
    recalled_at: datetime


class DeletionReminded(Event):
    """On the recipient's inbox: a recalled delivery's deletion is still unconfirmed."""

    TYPE = "eu.caseshare.delivery.deletion-reminded.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    requested_at: datetime
    reminder: int
    reminded_at: datetime


class DeletionConfirmed(Event):
    """The recipient confirmed it deleted a recalled delivery."""

    TYPE = "eu.caseshare.delivery.deletion-confirmed.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    confirmed_at: datetime


class PayloadDeleted(Event):
    """Retention: the hub deleted an acknowledged delivery's ciphertext; metadata stays."""

    TYPE = "eu.caseshare.delivery.payload-deleted.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    deleted_at: datetime


REQUEST_EVENTS: tuple[type[Event], ...] = (
    RequestIssued,
    RequestAcknowledged,
    ClarificationRequested,
    RequestClarified,
    RequestRefused,
    PreservationConfirmed,
    PreservationExtended,
    RequestAnswered,
    PreservationEnded,
    RequestWithdrawn,
    RequestLapsed,
    RequestObjected,
    ReviewConcluded,
    DeadlineReminderDue,
    DeadlineBreached,
    RequestReviewNotified,
)


_CORE_EVENTS: tuple[type[Event], ...] = (
    CaseRegistered,
    CaseStatusChanged,
    ResponseReceived,
    ResponseDelivered,
    CaseLinkFound,
    CaseLinkDisclosed,
    CoordinationRequested,
    CoordinationDecided,
    ReleaseRequested,
    ReleaseDecided,
    DeliveryPublished,
    DeliveryAcknowledged,
    JurisdictionExcluded,
    JurisdictionsExcluded,
    DeliveryFailed,
    WebhookEndpointChanged,
    WebhookEndpointDisabled,
    ResponseRecalled,
    DeliveryRecalled,
    DeletionReminded,
    DeletionConfirmed,
    PayloadDeleted,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in (*_CORE_EVENTS, *REQUEST_EVENTS)}
# No longer emitted; their contracts stay so that records already on a topic still validate.
RETIRED_EVENTS: tuple[type[Event], ...] = (JurisdictionExcluded,)


def json_datetime(value: datetime) -> str:
    """A timestamp exactly as these models write it in JSON mode (ISO 8601, UTC as `Z`), for
    code that builds a payload without the model."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def topic_name(
    prefix: str, family: Topic, jurisdiction: str | None = None, *, platform: str | None = None
) -> str:
    """`caseshare.responses.v1`, `caseshare.inbox.FR.v1` for a jurisdiction's inbox, or
    `caseshare.platform.telegram.v1` for a platform's."""
    if family == "platform":
        if platform is None or not platform.replace("-", "").isalnum():
            raise ValueError("a platform topic needs the platform's slug")
        return f"{prefix}.platform.{platform}.v1"
    if family == "inbox":
        if jurisdiction is None or len(jurisdiction) != 2 or not jurisdiction.isalpha():
            raise ValueError("an inbox topic needs an ISO 3166-1 alpha-2 code")
        return f"{prefix}.inbox.{jurisdiction.upper()}.v1"
    return f"{prefix}.{family}.v1"
