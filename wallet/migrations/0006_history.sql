-- What round and transaction history reads (Operator API: /v1/rounds, /v1/transactions).

-- A player's rounds newest first, a page at a time: the keyset (opened_at, id) is an index
-- condition, so a page starts where the last one ended instead of counting from the top. It
-- serves everything rounds_player_idx served, so that index goes.
CREATE INDEX rounds_history_idx ON rounds (operator, player_id, opened_at, id);
DROP INDEX rounds_player_idx;

-- A provider's transaction id, whatever its kind and scope: a bet and its refund may share one.
CREATE INDEX operations_external_idx ON operations (provider, external_id);

-- The rollbacks that reverse a given operation: a rollback may carry no round id, and it counts
-- in the round of what it reverses.
CREATE INDEX operations_reference_idx ON operations (provider, scope, reference_id) WHERE kind = 'rollback';
