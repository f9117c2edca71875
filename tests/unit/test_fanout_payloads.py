"""The fan-out builds its most frequent outbox payloads without their pydantic models; each must
be exactly what the model would have written, or the published contract drifts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.registry.standing import rules
from services.router import exclusions, fanout, publish
from shared.events import (
    DeliveryPublished,
    ExcludedJurisdiction,
    JurisdictionsExcluded,
    json_datetime,
)

MOMENTS = [
    datetime.now(UTC),
    datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
    datetime(2026, 11, 29, 10, 0, 0, 120000, tzinfo=UTC),
    datetime(2026, 11, 29, 10, 0, tzinfo=timezone(timedelta(hours=2))),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_json_datetime_writes_what_the_models_write(moment: datetime) -> None:
    dumped = DeliveryPublished(
        delivery_id=uuid.uuid4(),
        response_id=uuid.uuid4(),
        jurisdiction="FR",
        rule="named_case",
        attempt=1,
        published_at=moment,
    ).model_dump(mode="json")
    assert json_datetime(moment) == dumped["published_at"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_exclusions_payload_is_the_models_dump(moment: datetime) -> None:
    response_id = uuid.uuid4()
    decisions = [
        rules.Decision(code, False, reason, case, f"{code} is excluded because ...")
        for code, reason, case in [
            ("DE", rules.Reason.SCOPE_MISMATCH, uuid.uuid4()),
            ("US", rules.Reason.NO_OPEN_CASE, None),
        ]
    ]
    idents = [fanout.exclusion_id(response_id, d.jurisdiction) for d in decisions]
    expected = JurisdictionsExcluded(
        response_id=response_id,
        decided_at=moment,
        exclusions=[
            ExcludedJurisdiction(
                exclusion_id=ident, jurisdiction=d.jurisdiction, reason=d.reason, detail=d.detail
            )
            for ident, d in zip(idents, decisions, strict=True)
        ],
    ).model_dump(mode="json")
    built = exclusions.summary_payload(
        str(response_id), list(zip(idents, decisions, strict=True)), json_datetime(moment)
    )
    assert built == expected
    assert list(built) == list(expected)
    assert [list(item) for item in built["exclusions"]] == [
        list(item) for item in expected["exclusions"]
    ]


def test_published_payload_is_the_models_dump() -> None:
    delivery_id, response_id, moment = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    expected = DeliveryPublished(
        delivery_id=delivery_id,
        response_id=response_id,
        jurisdiction="BE",
        rule="shared_selector",
        attempt=3,
        published_at=moment,
    ).model_dump(mode="json")
    built = publish.published_payload(
        delivery_id=str(delivery_id),
        response_id=str(response_id),
        jurisdiction="BE",
        rule="shared_selector",
        attempt=3,
        at=json_datetime(moment),
    )
    assert built == expected
    assert list(built) == list(expected)
