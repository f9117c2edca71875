"""Standing rules: which jurisdictions receive a cooperation response, and why.

This is the core decision of caseshare, kept pure (no I/O) so that every outcome can be
tested exhaustively and explained after the fact. ``decide`` returns one ``Decision`` per
known jurisdiction: either an inclusion with the rule that granted standing, or an
exclusion with the single most informative reason.

Standing. A jurisdiction J has standing for response R about platform P through a case C
that is OPEN, on P, opened by a known jurisdiction and matched by R's scope, when either
  * J opened C and J is active (member/partner, or associated with an active member or
    partner coordinator on C), or
  * J is C's coordinator and J is itself a member or partner.
Among several such cases the best is chosen by rule (NAMED_CASE > JOINED_LEAD_CASE >
SHARED_SELECTOR > COORDINATES_MATCHED_CASE), then by lowest case id.

Exclusion precedence, first that applies wins:
  1. SUSPENDED             J's own status is suspended (whatever its cases).
  2. COORDINATOR_INACTIVE  J has qualifying cases but is active for none of them
                           (associated opener without an active member or partner
                           coordinator, or an associated jurisdiction as coordinator).
  3. HANDLING_RESTRICTED   J would have standing, but R is H2 and J is neither the opener
                           nor the coordinator of R's requesting case (or R names none,
                           or the requesting case is unknown or about another platform).
  4. PENDING_COORDINATION  J opened a case on P that R's scope matches, but its coordinator
                           has not accepted the coordination yet.
     CASE_NOT_OPEN         J opened a case on P that R's scope matches, but it is not open.
  5. PLATFORM_MISMATCH     J opened a case R's scope matches, but about another platform.
  6. SCOPE_MISMATCH        J opened an open case on P that R's scope does not match.
  7. NO_OPEN_CASE          none of the above.
After standing, three more exclusions are decided outside these rules: NO_MATCHING_DISCLOSURE
(minimisation left nothing for J), WITHHELD_BY_ORIGINATOR and RELEASE_LAPSED (release).
Steps 4-6 go from nearest to furthest miss: a matched case that is merely closed explains
more than a match on the wrong platform, which explains more than an unrelated case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from uuid import UUID

from services.registry.cases.rules import CaseStatus
from services.registry.reference.rules import JurisdictionStatus
from services.registry.responses.rules import HandlingCode


class Reason(StrEnum):
    # include reasons
    NAMED_CASE = "named_case"
    SHARED_SELECTOR = "shared_selector"
    JOINED_LEAD_CASE = "joined_lead_case"
    COORDINATES_MATCHED_CASE = "coordinates_matched_case"
    # exclude reasons
    NO_OPEN_CASE = "no_open_case"
    PLATFORM_MISMATCH = "platform_mismatch"
    SCOPE_MISMATCH = "scope_mismatch"
    SUSPENDED = "suspended"
    COORDINATOR_INACTIVE = "coordinator_inactive"
    HANDLING_RESTRICTED = "handling_code_restriction"
    CASE_NOT_OPEN = "case_not_open"
    PENDING_COORDINATION = "pending_coordination"
    # decided after standing, by the release and minimisation rules (releases/rules.py)
    WITHHELD_BY_ORIGINATOR = "withheld_by_originator"
    NO_MATCHING_DISCLOSURE = "no_matching_disclosure"
    RELEASE_LAPSED = "release_lapsed"


INCLUDE_REASONS = frozenset(
    {
        Reason.NAMED_CASE,
        Reason.SHARED_SELECTOR,
        Reason.JOINED_LEAD_CASE,
        Reason.COORDINATES_MATCHED_CASE,
    }
)
_ACTIVE_STATUSES = frozenset({JurisdictionStatus.MEMBER, JurisdictionStatus.PARTNER})
_RULE_RANK = {
    Reason.NAMED_CASE: 0,
    Reason.JOINED_LEAD_CASE: 1,
    Reason.SHARED_SELECTOR: 2,
    Reason.COORDINATES_MATCHED_CASE: 3,
}


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str
    status: JurisdictionStatus


@dataclass(frozen=True, slots=True)
class Case:
    id: UUID
    opened_by: str
    platform: str
    status: CaseStatus
    coordinator: str | None
    lead_case_id: UUID | None
    selector_hashes: frozenset[str]


@dataclass(frozen=True, slots=True)
class ResponseScope:
    case_ids: frozenset[UUID]
    selector_hashes: frozenset[str]
    lead_case_id: UUID | None


@dataclass(frozen=True, slots=True)
class Response:
    id: UUID
    platform: str
    handling_code: HandlingCode
    scope: ResponseScope
    requesting_case_id: UUID | None


@dataclass(frozen=True, slots=True)
class Decision:
    jurisdiction: str
    included: bool
    reason: Reason
    matched_case_id: UUID | None
    detail: str


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A case through which a jurisdiction could have standing, and whether it is active."""

    rule: Reason
    case: Case
    active: bool

    def sort_key(self) -> tuple[bool, int, UUID]:
        return (not self.active, _RULE_RANK[self.rule], self.case.id)


def case_matches(response: Response, case: Case) -> Reason | None:
    """Say which scope rule ties the response to the case, ignoring status and platform.

    Kept separate from ``decide`` so callers (and the exclusion diagnostics) can ask
    "would this case be in scope?" without re-implementing the scope rules.
    """
    scope = response.scope
    if case.id in scope.case_ids:
        return Reason.NAMED_CASE
    lead = scope.lead_case_id
    if lead is not None and lead in (case.id, case.lead_case_id):
        return Reason.JOINED_LEAD_CASE
    if scope.selector_hashes & case.selector_hashes:
        return Reason.SHARED_SELECTOR
    return None


def is_active(j: Jurisdiction, coordinator: Jurisdiction | None) -> bool:
    """Tell whether J may receive through a case it opened with this coordinator.

    Associated countries take part only through a coordinating member or partner, so
    their activity depends on that coordinator's own status.
    """
    if j.status in _ACTIVE_STATUSES:
        return True
    if j.status is JurisdictionStatus.ASSOCIATED:
        return coordinator is not None and coordinator.status in _ACTIVE_STATUSES
    return False


def relevant(response: Response, cases: Iterable[Case]) -> list[Case]:
    """The cases that can change a decision about `response`, selectors cut to the scope's.

    They are: every case the scope matches (standing, coordination, and the CASE_NOT_OPEN and
    PLATFORM_MISMATCH explanations), the requesting case (H2 recipients), and each opener's
    lowest-id open case on the platform (the SCOPE_MISMATCH explanation names that one). So
    ``decide`` over these equals ``decide`` over all cases, and the router loads only these.
    """
    lowest_open: dict[str, Case] = {}
    for case in sorted(cases, key=lambda c: c.id):
        if case.status is CaseStatus.OPEN and case.platform == response.platform:
            lowest_open.setdefault(case.opened_by, case)
    keep = {c.id for c in lowest_open.values()}
    scope = response.scope
    return [
        replace(case, selector_hashes=case.selector_hashes & scope.selector_hashes)
        for case in cases
        if case.id in keep
        or case.id == response.requesting_case_id
        or case_matches(response, case) is not None
    ]


def decide(
    response: Response,
    *,
    cases: Iterable[Case],
    jurisdictions: Mapping[str, Jurisdiction],
) -> list[Decision]:
    """Decide, for every known jurisdiction, whether it receives the response and why.

    Returns exactly one decision per entry of ``jurisdictions``, sorted by code, so the
    router can record an inclusion or an exclusion for each and the result is the same
    whatever order the cases were loaded in. Cases opened by unknown jurisdictions are
    ignored. Raises ``ValueError`` if a mapping key differs from its jurisdiction's code.
    """
    for code, j in jurisdictions.items():
        if code != j.code:
            raise ValueError(f"jurisdiction mapping key {code!r} does not match {j.code!r}")
    known = sorted((c for c in cases if c.opened_by in jurisdictions), key=lambda c: c.id)
    allowed = _h2_recipients(response, known)
    index = _Index.build(response, known)
    return [
        _decide_one(jurisdictions[code], response, index, jurisdictions, allowed)
        for code in sorted(jurisdictions)
    ]


def _h2_recipients(response: Response, cases: list[Case]) -> frozenset[str] | None:
    """Who an H2 response may reach (None: no handling restriction on recipients)."""
    if response.handling_code is not HandlingCode.H2:
        return None
    for case in cases:
        if case.id == response.requesting_case_id and case.platform == response.platform:
            return frozenset(c for c in (case.opened_by, case.coordinator) if c is not None)
    return frozenset()


@dataclass(frozen=True, slots=True)
class _Index:
    """The cases grouped by who could use them, each scope match computed once, so deciding
    for every jurisdiction costs one pass over the cases rather than one per jurisdiction."""

    # opener -> its cases in id order, each with the scope rule that matches it (or None)
    own: dict[str, list[tuple[Case, Reason | None]]]
    # coordinator -> open, matched cases on the platform that someone else opened
    coordinated: dict[str, list[Case]]

    @classmethod
    def build(cls, response: Response, cases: list[Case]) -> _Index:
        own: dict[str, list[tuple[Case, Reason | None]]] = {}
        coordinated: dict[str, list[Case]] = {}
        for case in cases:
            rule = case_matches(response, case)
            own.setdefault(case.opened_by, []).append((case, rule))
            if (
                rule is not None
                and _usable(response, case)
                and case.coordinator is not None
                and case.coordinator != case.opened_by
            ):
                coordinated.setdefault(case.coordinator, []).append(case)
        return cls(own, coordinated)


def _usable(response: Response, case: Case) -> bool:
    return case.status is CaseStatus.OPEN and case.platform == response.platform


def _candidates(
    j: Jurisdiction,
    response: Response,
    index: _Index,
    jurisdictions: Mapping[str, Jurisdiction],
) -> list[_Candidate]:
    """Every open, in-scope case on the platform that J opened or coordinates, best first."""
    found: list[_Candidate] = []
    for case, rule in index.own.get(j.code, ()):
        if rule is None or not _usable(response, case):
            continue
        coordinator = jurisdictions.get(case.coordinator) if case.coordinator else None
        found.append(_Candidate(rule, case, is_active(j, coordinator)))
    active = j.status in _ACTIVE_STATUSES
    for case in index.coordinated.get(j.code, ()):
        found.append(_Candidate(Reason.COORDINATES_MATCHED_CASE, case, active))
    return sorted(found, key=_Candidate.sort_key)


def _decide_one(
    j: Jurisdiction,
    response: Response,
    index: _Index,
    jurisdictions: Mapping[str, Jurisdiction],
    allowed: frozenset[str] | None,
) -> Decision:
    candidates = _candidates(j, response, index, jurisdictions)
    best = candidates[0] if candidates else None
    best_id = best.case.id if best else None
    if j.status is JurisdictionStatus.SUSPENDED:
        return _exclude(j, Reason.SUSPENDED, best_id, "the jurisdiction is suspended")
    if best is None:
        return _near_miss(j, response, index.own.get(j.code, []))
    if not best.active:
        why = (
            "an associated jurisdiction cannot coordinate"
            if best.rule is Reason.COORDINATES_MATCHED_CASE
            else "its case has no active member or partner coordinator"
        )
        return _exclude(j, Reason.COORDINATOR_INACTIVE, best_id, why)
    if allowed is not None and j.code not in allowed:
        why = "the H2 handling code limits it to the requesting case's opener and coordinator"
        return _exclude(j, Reason.HANDLING_RESTRICTED, best_id, why)
    return Decision(j.code, True, best.rule, best_id, _include_detail(j, best))


def _near_miss(
    j: Jurisdiction, response: Response, own: list[tuple[Case, Reason | None]]
) -> Decision:
    """Explain an exclusion for J without standing by its nearest miss (precedence 4-7)."""
    matched = [case for case, rule in own if rule is not None]
    for case in matched:
        if case.platform == response.platform and case.status is CaseStatus.PENDING_COORDINATION:
            why = "its matching case waits for its coordinator to accept the coordination"
            return _exclude(j, Reason.PENDING_COORDINATION, case.id, why)
    for case in matched:
        if case.platform == response.platform:
            why = f"its matching case is {case.status.value}, not open"
            return _exclude(j, Reason.CASE_NOT_OPEN, case.id, why)
    if matched:
        why = "its matching case concerns another platform"
        return _exclude(j, Reason.PLATFORM_MISMATCH, matched[0].id, why)
    for case, _ in own:
        if case.platform == response.platform and case.status is CaseStatus.OPEN:
            why = "the response scope does not cover its open case on this platform"
            return _exclude(j, Reason.SCOPE_MISMATCH, case.id, why)
    why = "it has no open case on this platform that the response concerns"
    return _exclude(j, Reason.NO_OPEN_CASE, None, why)


def _exclude(j: Jurisdiction, reason: Reason, case_id: UUID | None, why: str) -> Decision:
    return Decision(j.code, False, reason, case_id, f"{j.code} is excluded because {why}.")


_INCLUDE_WHY = {
    Reason.NAMED_CASE: "the response names its case",
    Reason.JOINED_LEAD_CASE: "its case is or joins the lead case the response concerns",
    Reason.SHARED_SELECTOR: "its case shares a selector with the response",
    Reason.COORDINATES_MATCHED_CASE: "it coordinates a case the response concerns",
}


def _include_detail(j: Jurisdiction, best: _Candidate) -> str:
    return f"{j.code} receives the response because {_INCLUDE_WHY[best.rule]}."
