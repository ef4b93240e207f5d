-- The gateway's ledger. Run with search_path set to the gateway's schema.

-- One row per provider operation: the idempotency key (its UNIQUE constraint is the guard against a
-- double apply), the canonical request, and the result that was answered.
CREATE TABLE operations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  uuid NOT NULL UNIQUE,          -- Croupier's id, sent to the operator
    provider        text NOT NULL,
    scope           text NOT NULL,                 -- '' or 'operator/player' for providers that reuse ids
    kind            text NOT NULL CHECK (kind IN ('debit', 'credit', 'rollback', 'end_round')),
    external_id     text NOT NULL,
    operator        text NOT NULL,
    player_id       text NOT NULL,
    currency        text NOT NULL,
    amount_minor    bigint CHECK (amount_minor >= 0),
    round_id        text,
    game_id         text,
    credit_kind     text,
    reference_id    text,                          -- rollback: the provider's id of what it reverses
    reference_kind  text,
    request_hash    bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'applied', 'rejected', 'queued', 'tombstone')),
    reason          text,
    reversed        boolean NOT NULL DEFAULT false,  -- an applied debit or credit that a rollback reversed
    balance_minor   bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, scope, kind, external_id)
);
CREATE INDEX operations_player_idx ON operations (operator, player_id, created_at);
CREATE INDEX operations_pending_idx ON operations (updated_at) WHERE state IN ('pending', 'queued');

-- Money that moved, one signed row per movement. Append-only: a correction is a new entry.
CREATE TABLE entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id    bigint NOT NULL REFERENCES operations (id),
    operator        text NOT NULL,
    player_id       text NOT NULL,
    currency        text NOT NULL,
    amount_minor    bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_player_idx ON entries (operator, player_id, currency);

CREATE FUNCTION entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER entries_no_update BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_append_only();

CREATE TABLE rounds (
    provider        text NOT NULL,
    operator        text NOT NULL,
    player_id       text NOT NULL,
    round_id        text NOT NULL,
    game_id         text,
    currency        text NOT NULL,
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    bets_count      integer NOT NULL DEFAULT 0,
    live_bets       integer NOT NULL DEFAULT 0,
    bets_minor      bigint NOT NULL DEFAULT 0,
    wins_count      integer NOT NULL DEFAULT 0,
    wins_minor      bigint NOT NULL DEFAULT 0,
    refunds_count   integer NOT NULL DEFAULT 0,
    refunds_minor   bigint NOT NULL DEFAULT 0,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    PRIMARY KEY (provider, operator, player_id, round_id)
);

-- Balances kept by Croupier itself, for operators on the 'ledger' backend.
CREATE TABLE accounts (
    operator        text NOT NULL,
    player_id       text NOT NULL,
    currency        text NOT NULL,
    balance_minor   bigint NOT NULL DEFAULT 0 CHECK (balance_minor >= 0),
    blocked         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (operator, player_id, currency)
);

-- Calls to the operator that must happen even if this node dies: rollbacks of debits whose outcome
-- is unknown, and credits and rollbacks not yet acknowledged. A row is written in the same
-- transaction as the operation's intent and scheduled for later; answering in time cancels it.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id    bigint NOT NULL UNIQUE REFERENCES operations (id),
    operator        text NOT NULL,
    action          text NOT NULL CHECK (action IN ('credit', 'rollback', 'cancel_debit')),
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'scheduled'
                    CHECK (state IN ('scheduled', 'delivered', 'cancelled', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (due_at) WHERE state = 'scheduled';
