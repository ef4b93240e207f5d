-- GGR roll-ups: one row per closed UTC day, operator, provider, game and currency, built once the
-- day is over (its entries can no longer change: they are append-only and stamped when written).
-- ggr_days records which days were built, so a day with no play is not built again.
CREATE TABLE ggr_days (
    operator    text NOT NULL,
    day         date NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, day)
);

CREATE TABLE ggr_daily (
    operator                text NOT NULL,
    day                     date NOT NULL,
    provider                text NOT NULL,
    game_id                 text NOT NULL,
    currency                text NOT NULL,
    bets_minor              bigint NOT NULL,
    wins_minor              bigint NOT NULL,
    freeround_wins_minor    bigint NOT NULL,
    refunds_minor           bigint NOT NULL,
    ggr_minor               bigint NOT NULL,
    rounds                  bigint NOT NULL,
    players                 bigint NOT NULL,
    PRIMARY KEY (operator, day, provider, game_id, currency)
);

-- Entries are written in time order and never changed: a BRIN index finds a day's entries for
-- building its roll-up (and today's for the live part of a report) at almost no cost per insert.
CREATE INDEX entries_created_brin ON entries USING brin (created_at);
