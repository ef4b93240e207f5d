-- Reconciliation of the gateway's ledger against an operator's wallet: one row per run, one per
-- difference found, with the action taken and why. Nothing here is ever updated to hide a finding.
CREATE TABLE reconciliations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator        text NOT NULL,
    since           timestamptz NOT NULL,
    until           timestamptz NOT NULL,
    horizon_s       double precision NOT NULL,
    ours            integer NOT NULL,
    theirs          integer NOT NULL,
    started_at      timestamptz NOT NULL,
    -- Runs of the job in `croupier serve` chain their windows; a run by hand does not move them.
    scheduled       boolean NOT NULL DEFAULT false,
    finished_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliations_operator_idx ON reconciliations (operator, scheduled, until);

CREATE TABLE reconciliation_differences (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reconciliation_id   bigint NOT NULL REFERENCES reconciliations (id),
    transaction_id      uuid NOT NULL,
    kind                text NOT NULL,
    action              text NOT NULL CHECK (action IN ('redeliver', 'cancel_at_operator', 'report')),
    -- healing: the outbox was told to deliver it now; already_healing: an earlier run (or the
    -- outbox itself) has it in hand, so this run did nothing more; reported: for a person.
    outcome             text NOT NULL CHECK (outcome IN ('healing', 'already_healing', 'reported')),
    reason              text NOT NULL,
    ours                jsonb,
    theirs              jsonb
);
CREATE INDEX reconciliation_differences_run_idx ON reconciliation_differences (reconciliation_id);
