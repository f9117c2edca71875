"""The fan-out builds its most frequent outbox payloads without their pydantic models; each must
be exactly what the model would have written, or the published contract drifts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.registry.standing import rules
from services.router import fanout, publish
from shared.events import DeliveryPublished, JurisdictionExcluded, json_datetime

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
def test_excluded_payload_is_the_models_dump(moment: datetime) -> None:
    ident, response_id = uuid.uuid4(), uuid.uuid4()
    decision = rules.Decision(
        "DE", False, rules.Reason.SCOPE_MISMATCH, uuid.uuid4(), "DE is excluded because ..."
    )
    expected = JurisdictionExcluded(
        exclusion_id=ident,
        response_id=response_id,
        jurisdiction="DE",
        reason="scope_mismatch",
        detail="DE is excluded because ...",
        decided_at=moment,
    ).model_dump(mode="json")
    built = fanout.excluded_payload(str(ident), str(response_id), decision, json_datetime(moment))
    assert built == expected
    assert list(built) == list(expected)


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
