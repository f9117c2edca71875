"""The states of a fan-out and of each delivery in it, as types.

A response is `received`, then `routed` once its decisions are recorded, then `completed` once
every delivery is published. A response answering a request under the enforcing state's review is
`held_for_review` until the review ends (then `received`), or `objected` for ever if it objects.
A delivery is `pending` until its record is on the recipient's inbox topic, `published` then,
and `acknowledged` when the recipient confirms retrieval; one that exhausted its attempts is
`failed`. A delivery that needs the originator's release starts `held`; released it becomes
`pending`, withheld (or lapsed) it becomes `withheld`.
One withdrawn by a recall before its recipient acknowledged it is `recalled` (gone from the
inbox; an acknowledged one stays acknowledged and gets a deletion request instead).
"""

from __future__ import annotations

from enum import StrEnum


class FanoutState(StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    COMPLETED = "completed"
    HELD_FOR_REVIEW = "held_for_review"
    OBJECTED = "objected"


class DeliveryState(StrEnum):
    # waiting for the originator's release (never published while held)
    HELD = "held"
    # the originator withheld it, or nobody decided in time: it is never published
    WITHHELD = "withheld"
    PENDING = "pending"
    PUBLISHED = "published"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    RECALLED = "recalled"


FANOUT_STATES = tuple(FanoutState)
DELIVERY_STATES = tuple(DeliveryState)
