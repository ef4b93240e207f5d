-- What the Operator API reads: rounds by a stable id and by player and time, and the free-round
-- campaign a credit paid for.

ALTER TABLE operations ADD COLUMN campaign_id text;
CREATE INDEX operations_campaign_idx ON operations (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX operations_round_idx ON operations (provider, operator, player_id, round_id);

-- A round's own id, so support staff name one round with one value whatever the provider's ids are.
ALTER TABLE rounds ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX rounds_id_idx ON rounds (id);
CREATE INDEX rounds_player_idx ON rounds (operator, player_id, opened_at);
