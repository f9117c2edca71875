"""register a case in one round trip: a server-side function for intake's hot path

A registration read the references, took its advisory locks, inserted the case and its
selectors, looked for open cases sharing a selector, queued its outbox event and its audit
entry: eight round trips with BEGIN and COMMIT, each one a wake-up of PostgreSQL on the same
two cores. `register_case` does all of it in one call, and `case_open_matches` is the one
definition of "open cases of others sharing a selector" that it and the coordinator's
acceptance use (docs/adr/0009-register-case-in-one-round-trip.md).

The function decides nothing of its own: Python passes the reference states that
`cases.rules.check_references` accepts for this request, every row already built (case,
selectors, outbox events, audit entries) and the lock ids; the function compares, locks,
reads and writes. It is PL/pgSQL rather than one statement of data-modifying CTEs because
every statement of a function takes a new snapshot: the cross-match read, after the locks,
sees a racing registration that committed while this one waited for them, as the
multi-statement transaction did. One statement has one snapshot, taken before its locks.

Outcomes: `refused` (references the rule does not accept: nothing written, the references
returned so the rule can word its refusal), `hit` (`p_alone` and an open case of another
jurisdiction shares a selector: nothing written, the caller registers in a transaction of its
own so the links commit with the case), `duplicate` (the opener already used the reference:
nothing written), `matched` (case and selectors written; the caller links the matches and
then queues the events and audit entries itself, in the order the relay and the chain saw
them before), `registered` (everything written).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 17:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Selectors first, then their cases by primary key: a case table that grew faster than its
# statistics otherwise gets scanned for every open case on the platform.
OPEN_MATCHES = """
CREATE FUNCTION case_open_matches(p_hashes text[], p_platform text, p_opener text)
RETURNS TABLE (id uuid, opened_by text, reference text)
LANGUAGE sql STABLE AS $$
    WITH hits AS MATERIALIZED (
        SELECT case_id FROM case_selectors WHERE value_hash = ANY (p_hashes)
    )
    SELECT DISTINCT c.id, c.opened_by::text, c.reference::text
    FROM cases AS c
    JOIN hits ON hits.case_id = c.id
    JOIN jurisdictions AS j ON j.code = c.opened_by
    WHERE c.platform = p_platform
      AND c.opened_by <> p_opener
      AND c.status = 'open'
      -- a suspended jurisdiction is told of no hit, and none is made with its cases
      AND j.status <> 'suspended'
$$
"""

REGISTER_CASE = """
CREATE FUNCTION register_case(
    p_alone boolean,
    p_case jsonb,
    p_selectors jsonb,
    p_accepted jsonb,
    p_lock_space integer,
    p_locks integer[],
    p_outbox jsonb,
    p_audit jsonb,
    OUT outcome text,
    OUT refs jsonb,
    OUT matches jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := (p_case ->> 'id')::uuid;
    v_opener text := p_case ->> 'opened_by';
    v_platform text := p_case ->> 'platform';
    v_lead uuid := (p_case ->> 'lead_case_id')::uuid;
BEGIN
    refs := jsonb_build_object(
        'opener_status', (SELECT j.status FROM jurisdictions AS j WHERE j.code = v_opener),
        'coordinator_status', (
            SELECT j.status FROM jurisdictions AS j
            WHERE j.code = p_case ->> 'coordinating_jurisdiction'
        ),
        'platform_exists', EXISTS (SELECT FROM platforms AS p WHERE p.slug = v_platform),
        'lead_on_platform', EXISTS (
            SELECT FROM cases AS c WHERE c.id = v_lead AND c.platform = v_platform
        )
    );
    IF NOT EXISTS (SELECT FROM jsonb_array_elements(p_accepted) AS ok WHERE ok = refs) THEN
        outcome := 'refused';
        RETURN;
    END IF;
    -- in ascending order, as given: two registrations never wait on each other in a cycle
    PERFORM count(pg_advisory_xact_lock(p_lock_space, ident)) FROM unnest(p_locks) AS ident;
    matches := '[]';
    IF p_case ->> 'status' = 'open' THEN
        SELECT coalesce(jsonb_agg(jsonb_build_array(m.id, m.opened_by) ORDER BY m.id), '[]')
        INTO matches
        FROM case_open_matches(
            ARRAY(SELECT s ->> 'value_hash' FROM jsonb_array_elements(p_selectors) AS s),
            v_platform,
            v_opener
        ) AS m;
        IF p_alone AND matches <> '[]' THEN
            outcome := 'hit';
            RETURN;
        END IF;
    END IF;
    INSERT INTO cases (id, reference, opened_by, platform, coordinating_jurisdiction,
        lead_case_id, offence_categories, legal_basis, status, emergency, release_policy,
        coordination_state, version, created_by_client, created_at, updated_at)
    SELECT c.id, c.reference, c.opened_by, c.platform, c.coordinating_jurisdiction,
        c.lead_case_id, c.offence_categories, c.legal_basis, c.status, c.emergency,
        c.release_policy, c.coordination_state, c.version, c.created_by_client, c.created_at,
        c.updated_at
    FROM jsonb_populate_record(NULL::cases, p_case) AS c
    ON CONFLICT (opened_by, reference) DO NOTHING;
    IF NOT FOUND THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    -- in the given order: reading selectors by id gives that order back
    INSERT INTO case_selectors (case_id, kind, value_hash, masked)
    SELECT v_id, s.kind, s.value_hash, s.masked
    FROM jsonb_populate_recordset(NULL::case_selectors, p_selectors) WITH ORDINALITY AS s
    ORDER BY s.ordinality;
    IF matches <> '[]' THEN
        outcome := 'matched';
        RETURN;
    END IF;
    -- in the given order: the relay publishes and the sequencer chains in id order
    INSERT INTO outbox (event_id, topic, key, event_type, subject, payload, traceparent)
    SELECT e.event_id, e.topic, e.key, e.event_type, e.subject, e.payload, e.traceparent
    FROM jsonb_populate_recordset(NULL::outbox, p_outbox) WITH ORDINALITY AS e
    ORDER BY e.ordinality;
    INSERT INTO audit_queue (at, actor, action, subject_type, subject_id, details)
    SELECT a.at, a.actor, a.action, a.subject_type, a.subject_id, a.details
    FROM jsonb_populate_recordset(NULL::audit_queue, p_audit) WITH ORDINALITY AS a
    ORDER BY a.ordinality;
    outcome := 'registered';
END
$$
"""


def upgrade() -> None:
    op.execute(OPEN_MATCHES)
    op.execute(REGISTER_CASE)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION register_case(boolean, jsonb, jsonb, jsonb, integer, integer[], jsonb,"
        " jsonb)"
    )
    op.execute("DROP FUNCTION case_open_matches(text[], text, text)")
