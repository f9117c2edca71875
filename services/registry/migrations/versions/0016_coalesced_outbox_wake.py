"""the relay's wake-up for a lone registration comes from intake after commit, coalesced

Every transaction that inserts an outbox row NOTIFYs (the `outbox_notify` trigger), and
PostgreSQL serialises notifying commits on one lock held across the commit's WAL flush: at 16
connections of one-INSERT transactions this machine commits 3,700-5,000/s without the trigger
and 460-1,500/s with it. Registrations are the busiest writer, so a registration made in one
statement (`register_case` with `p_alone`) no longer notifies from inside its transaction:
it marks the transaction (`caseshare.outbox_wake = caller`), the trigger skips the NOTIFY,
and intake sends one plain NOTIFY after the commit, at most one in flight per process, another
after it when registrations committed meanwhile (`services/registry/cases/wake.py`). A NOTIFY
in a transaction that writes nothing holds the lock only for its own short commit. Every other
writer keeps the trigger; the relay still polls every half second, so a lost wake-up delays
an event, never loses it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('caseshare.outbox_wake', true) IS DISTINCT FROM 'caller' THEN
            PERFORM pg_notify('caseshare_outbox', '');
        END IF;
        RETURN NULL;
    END $$
"""
NOTIFY_0001 = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('caseshare_outbox', '');
        RETURN NULL;
    END $$
"""

REGISTER_CASE = """
CREATE OR REPLACE FUNCTION register_case(
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
    -- alone, the caller wakes the relay once the statement has committed (migration 0016)
    IF p_alone THEN
        PERFORM set_config('caseshare.outbox_wake', 'caller', true);
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

REGISTER_CASE_0015 = """
CREATE OR REPLACE FUNCTION register_case(
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
    op.execute(NOTIFY)
    op.execute(REGISTER_CASE)


def downgrade() -> None:
    op.execute(REGISTER_CASE_0015)
    op.execute(NOTIFY_0001)
