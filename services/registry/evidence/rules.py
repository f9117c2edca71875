"""Pure rules of evidence: which events are recorded, what a record's signed claims hold, and
which recipients a submitting platform may be told about.

Modelled on ETSI REM evidence as e-CODEX/Domibus issues it (submission acceptance or
rejection, relay, retrieval, non-delivery) and extended with the end of a disclosure's life
(recall, deletion confirmed, payload deleted by retention).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

ISSUER = "caseshare"


class EvidenceKind(StrEnum):
    """What happened. Other domains add theirs here (requests, releases) and call
    `evidence.service.record` inside their own transaction."""

    SUBMISSION_ACCEPTED = "submission.accepted"
    SUBMISSION_REJECTED = "submission.rejected"
    RELAYED = "delivery.relayed"
    RETRIEVED = "delivery.retrieved"
    NOT_RETRIEVED = "delivery.not-retrieved"
    RESPONSE_RECALLED = "response.recalled"
    DELIVERY_WITHDRAWN = "delivery.withdrawn"
    DELETION_REQUESTED = "delivery.deletion-requested"
    DELETION_CONFIRMED = "delivery.deletion-confirmed"
    PAYLOAD_DELETED = "delivery.payload-deleted"
    RELEASED = "release.released"
    WITHHELD = "release.withheld"
    REQUEST_SENT = "request.sent"
    REQUEST_ANSWERED = "request.answered"


EVIDENCE_KINDS = tuple(EvidenceKind)


class DeletionState(StrEnum):
    """A recipient's deletion of an acknowledged, recalled delivery: asked, then confirmed."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"


DELETION_STATES = tuple(DeletionState)


def subject_tag(kind: str, ident: object) -> str:
    """`response:<id>`, `delivery:<id>`: how claims and bundles name what a record is about."""
    return f"{kind}:{ident}"


def json_time(at: datetime) -> str:
    """UTC, microseconds, `Z`: one spelling of a time in every record."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_claims(
    *,
    record_id: uuid.UUID,
    kind: EvidenceKind,
    subject_type: str,
    subject_id: str,
    subjects: Iterable[str],
    at: datetime,
    audit_digest: str,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The claims a record signs. `subjects` lists every object the record is about (the
    response and the delivery, say), so a bundle for either can hold it; `audit_digest` links
    the record to the audit entry queued with it (see `audit.service.entry_digest`)."""
    return {
        "iss": ISSUER,
        "id": str(record_id),
        "kind": kind.value,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "subjects": sorted(set(subjects) | {subject_tag(subject_type, subject_id)}),
        "at": json_time(at),
        "audit_digest": audit_digest,
        "details": dict(details or {}),
    }


def nameable_jurisdictions(
    *, named_case_openers: Iterable[str], recipients: Iterable[str]
) -> frozenset[str]:
    """Which recipients of a response its platform may see named.

    Decision: only the jurisdictions that opened a case the platform itself named in its
    response (scope case ids, lead case, requesting case). Those cases target the platform and
    reached it as legal requests, so it knows them already. Any other recipient got the
    response because its own case matched a selector: naming it would tell the platform that
    this jurisdiction investigates its user, which the platform must not learn from the hub.
    Such recipients are reported only as counts per state, and their evidence stays with the
    hub and the recipient (delivery ids are derived from the jurisdiction, so they are withheld
    too).
    """
    return frozenset(named_case_openers) & frozenset(recipients)


def digest(data: bytes) -> str:
    """SHA-256, hex: the digest used for audit links."""
    return hashlib.sha256(data).hexdigest()
