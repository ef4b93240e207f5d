-- Each operator's own settings for a catalogue game: whether it may be launched, and the RTP
-- variant it is launched with. A game with no row is enabled with the provider's default RTP.

CREATE TABLE game_settings (
    operator     text NOT NULL,
    provider     text NOT NULL,
    game_id      text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    rtp_variant  text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, provider, game_id)
);
