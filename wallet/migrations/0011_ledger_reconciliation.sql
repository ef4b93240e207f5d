-- Reconciling a ledger-backend operator reads each operation's entries: without this index every
-- operation of a window would scan the entries (it is also the index a foreign key wants).
CREATE INDEX entries_operation_idx ON entries (operation_id);

-- A balance that is not the sum of its entries is a difference of an account, and a stuck round one
-- of a round, not of a transaction: the subject names them (player/currency, provider/player/round).
ALTER TABLE reconciliation_differences ALTER COLUMN transaction_id DROP NOT NULL;
ALTER TABLE reconciliation_differences ADD COLUMN subject text;
ALTER TABLE reconciliation_differences ADD CONSTRAINT reconciliation_differences_subject
    CHECK ((transaction_id IS NULL) <> (subject IS NULL));
-- A stuck round settled by its protocol's own rule.
ALTER TABLE reconciliation_differences DROP CONSTRAINT reconciliation_differences_action_check;
ALTER TABLE reconciliation_differences ADD CONSTRAINT reconciliation_differences_action_check
    CHECK (action IN ('redeliver', 'cancel_at_operator', 'settle_round', 'report'));
ALTER TABLE reconciliation_differences DROP CONSTRAINT reconciliation_differences_outcome_check;
ALTER TABLE reconciliation_differences ADD CONSTRAINT reconciliation_differences_outcome_check
    CHECK (outcome IN ('healing', 'already_healing', 'settled', 'reported'));

-- Which books a run compared: the operator's wallet (seamless) or the gateway's own (ledger).
ALTER TABLE reconciliations ADD COLUMN books text NOT NULL DEFAULT 'operator_wallet'
    CHECK (books IN ('operator_wallet', 'ledger'));
