-- The idempotency key's UNIQUE constraint is the one guard against a double apply; transaction_id
-- is derived from that key (uuid5), so its own UNIQUE constraint added nothing but a race: two
-- copies of one operation claimed at the same instant could meet on this index before the key's,
-- and INSERT ... ON CONFLICT (key) DO NOTHING handles only the key's index, so the later copy
-- failed with a unique violation instead of finding the first. A plain index serves the look-ups.
ALTER TABLE operations DROP CONSTRAINT operations_transaction_id_key;
CREATE INDEX operations_transaction_idx ON operations (transaction_id);
