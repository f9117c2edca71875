"""Pure rules of four-eyes approval: the states of a proposed change and who may approve it.

A jurisdiction's status decides whether it receives deliveries and its public key decides who
can read them, so one administrator alone must not change either: a change is proposed by one
and applied only when a different one approves it.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    SUPERSEDED = "superseded"  # a newer proposal for the same jurisdiction replaced it


CHANGE_STATES = tuple(ChangeState)


def may_approve(*, proposed_by: str, approver: str) -> bool:
    """Only someone other than the proposer approves: that is the second pair of eyes."""
    return approver != proposed_by
