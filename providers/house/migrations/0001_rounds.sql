-- The in-house games' own records, in schema provider_house (the gateway sets the search path).

-- Each game's maths exactly as a round was played with it, so any round can be rebuilt from the
-- database alone even after the configuration changes.
CREATE TABLE game_configs (
    sha256      bytea PRIMARY KEY,
    game        text NOT NULL,
    config      text NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now()
);

-- Provably fair seed pairs: one active pair per player (revealed_at IS NULL), older ones revealed.
CREATE TABLE seeds (
    id           bigserial PRIMARY KEY,
    operator     text NOT NULL,
    player_id    text NOT NULL,
    server_seed  bytea NOT NULL CHECK (length(server_seed) = 32),
    commitment   text NOT NULL,
    client_seed  text NOT NULL,
    next_nonce   bigint NOT NULL DEFAULT 0 CHECK (next_nonce >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revealed_at  timestamptz
);
CREATE UNIQUE INDEX seeds_one_active ON seeds (operator, player_id) WHERE revealed_at IS NULL;

-- One row per round, written before the bet is debited: the outcome is fixed and stored first.
CREATE TABLE rounds (
    round_id             uuid PRIMARY KEY,
    operator             text NOT NULL,
    player_id            text NOT NULL,
    currency             text NOT NULL,
    -- The session token that opened the round, hashed: a retry must come from the same player.
    token_sha256         bytea NOT NULL,
    game                 text NOT NULL,
    game_sha256          bytea NOT NULL REFERENCES game_configs (sha256),
    bet_minor            bigint NOT NULL CHECK (bet_minor > 0),
    params               jsonb NOT NULL,
    mode                 text NOT NULL CHECK (mode IN ('standard', 'fair')),
    seed_id              bigint REFERENCES seeds (id),
    nonce                bigint,
    -- The client seed in force when the round was played (the player may change it later).
    client_seed          text,
    -- Every (n, value) the game drew, in order: the raw material of recall.
    draws                jsonb NOT NULL,
    state                jsonb NOT NULL,
    win_minor            bigint NOT NULL CHECK (win_minor >= 0),
    -- drawn: stored, debit not yet answered; refused: the debit was refused (the outcome is void
    -- and never shown); accepted: the debit applied; settled: the win was paid and the round ended.
    status               text NOT NULL DEFAULT 'drawn'
                         CHECK (status IN ('drawn', 'refused', 'accepted', 'settled')),
    refusal              text,
    balance_before_minor bigint,
    balance_after_minor  bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((mode = 'fair') = (seed_id IS NOT NULL AND nonce IS NOT NULL AND client_seed IS NOT NULL))
);
CREATE INDEX rounds_by_player ON rounds (operator, player_id, created_at DESC);
-- A nonce is used once per seed pair.
CREATE UNIQUE INDEX rounds_seed_nonce ON rounds (seed_id, nonce) WHERE seed_id IS NOT NULL;
