"""The states of a fan-out and of each delivery in it, as types.

A response is `received`, then `routed` once its decisions are recorded, then `completed` once
every delivery is published. A delivery is `pending` until its record is on the recipient's
inbox topic, `published` then, and `acknowledged` when the recipient confirms retrieval; one
that exhausted its attempts is `failed`. One withdrawn by a recall before its recipient
acknowledged it is `recalled` (gone from the inbox; an acknowledged one stays acknowledged and
gets a deletion request instead).
"""

from __future__ import annotations

from enum import StrEnum


class FanoutState(StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    COMPLETED = "completed"


class DeliveryState(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    RECALLED = "recalled"


FANOUT_STATES = tuple(FanoutState)
DELIVERY_STATES = tuple(DeliveryState)
