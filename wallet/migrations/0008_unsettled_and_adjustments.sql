-- Decisions that depend on an operation still in flight at the operator (a win for a round whose
-- bet is pending) look it up by round: a small partial index, since few rows are ever in flight.
CREATE INDEX operations_unsettled_round_idx ON operations (operator, player_id, round_id)
    WHERE state IN ('pending', 'queued');

-- A balance set by hand (opening a ledger account, a play-money grant) is an entry of its own, so
-- every balance equals the sum of its entries. Such an entry has no provider operation.
ALTER TABLE entries ALTER COLUMN operation_id DROP NOT NULL;
ALTER TABLE entries ADD COLUMN kind text NOT NULL DEFAULT 'operation'
    CHECK (kind IN ('operation', 'adjustment'));
ALTER TABLE entries ADD COLUMN note text;
ALTER TABLE entries ADD CONSTRAINT entries_kind_operation
    CHECK ((kind = 'operation') = (operation_id IS NOT NULL));

-- A protocol with no end-of-round message (Evolution) declares that its rounds end once every
-- bet in them is settled; the round remembers the rule it was opened under.
ALTER TABLE rounds ADD COLUMN ends_when_settled boolean NOT NULL DEFAULT false;
