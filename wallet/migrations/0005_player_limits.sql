-- Responsible gaming: a player's own limits and block, read by the debit's first transaction and
-- by a launch. A player with no row (or a null column) is held to the operator's defaults.

CREATE TABLE player_limits (
    operator          text NOT NULL,
    player_id         text NOT NULL,
    currency          text,                        -- the currency the amount limits are in
    max_bet_minor     bigint CHECK (max_bet_minor >= 0),
    loss_limit_minor  bigint CHECK (loss_limit_minor >= 0),
    loss_period       text CHECK (loss_period IN ('day', 'week', 'month')),
    session_limit_s   integer CHECK (session_limit_s > 0),
    reality_check_s   integer CHECK (reality_check_s > 0),
    block_state       text CHECK (block_state IN ('blocked', 'self_excluded')),
    block_reason      text,
    blocked_since     timestamptz,
    blocked_until     timestamptz,                 -- null: until lifted (never for a self-exclusion)
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, player_id),
    CHECK (currency IS NOT NULL OR (max_bet_minor IS NULL AND loss_limit_minor IS NULL)),
    CHECK ((block_state IS NULL) = (blocked_since IS NULL)),
    CHECK (block_state IS DISTINCT FROM 'self_excluded' OR blocked_until IS NOT NULL)
);
