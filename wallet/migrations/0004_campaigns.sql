-- Free-round campaigns of the Operator API. Their progress is never stored here: it is read from
-- the credits in `operations` that name the campaign, so it cannot drift from the money paid.

CREATE TABLE campaigns (
    id              text PRIMARY KEY,              -- minted by Croupier; the provider's bonus code
    operator        text NOT NULL,
    name            text,
    provider        text NOT NULL,
    game_ids        text[] NOT NULL CHECK (cardinality(game_ids) >= 1),
    currency        text NOT NULL,
    rounds          integer NOT NULL CHECK (rounds >= 1),
    bet_minor       bigint NOT NULL CHECK (bet_minor >= 1),
    players         integer NOT NULL CHECK (players >= 1),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- 'active' and 'expired' are read from the clock; only a cancellation is recorded.
    cancelled_at    timestamptz
);
CREATE INDEX campaigns_operator_idx ON campaigns (operator, created_at DESC, id);

-- The players a campaign awards; `operator` is the distribution column.
CREATE TABLE campaign_players (
    campaign_id     text NOT NULL REFERENCES campaigns (id),
    operator        text NOT NULL,
    player_id       text NOT NULL,
    PRIMARY KEY (campaign_id, player_id)
);
CREATE INDEX campaign_players_player_idx ON campaign_players (operator, player_id);
