-- The reference operator wallet: player balances and every money request it has answered.

CREATE TABLE players (
    player_id     text PRIMARY KEY,
    currency      text NOT NULL,
    -- The CHECK is the last line of defence; the conditional UPDATE refuses first.
    balance_minor bigint NOT NULL CHECK (balance_minor >= 0),
    blocked       boolean NOT NULL DEFAULT false
);

CREATE TABLE transactions (
    -- The primary key is the idempotency guard: a retry, or a rollback racing its debit,
    -- inserts the same id, and PostgreSQL lets exactly one of them in.
    transaction_id           text PRIMARY KEY,
    type                     text NOT NULL CHECK (type IN ('debit', 'credit', 'rollback')),
    player_id                text NOT NULL,
    currency                 text NOT NULL,
    -- On an applied rollback this is the amount it reversed (0 when there was nothing to
    -- reverse), so the listing sums; every other row keeps the amount requested.
    amount_minor             bigint NOT NULL CHECK (amount_minor >= 0),
    round_id                 text NOT NULL,
    game_id                  text,
    provider                 text NOT NULL,
    kind                     text,
    reference_transaction_id text,
    -- NULL only on a tombstone, which no request of its own created.
    request_hash             bytea,
    state                    text NOT NULL
        CHECK (state IN ('applied', 'rolled_back', 'tombstone', 'rejected')),
    status                   text NOT NULL,
    balance_after            bigint,
    created_at               timestamptz NOT NULL DEFAULT now(),
    seq                      bigserial NOT NULL UNIQUE
);

CREATE INDEX transactions_created_at ON transactions (created_at);
