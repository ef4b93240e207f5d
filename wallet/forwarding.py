"""Settling operations with the operator's answer, inline or from the outbox, and never twice."""

from __future__ import annotations

import logging
import uuid

import asyncpg
import orjson

from wallet import ledger
from wallet.backends.base import OperatorWallet
from wallet.db import Connection
from wallet.engine import Engine, Outcome
from wallet.errors import Reason, RejectedError, UnavailableError
from wallet.metrics import Metrics
from wallet.operations import (
    TRANSACTION_NAMESPACE,
    Reply,
    ReplyStatus,
    Result,
    State,
    Transfer,
    TransferType,
    transfer_from_payload,
)
from wallet.policy import OperatorPolicy

log = logging.getLogger(__name__)

# Refusals after which the operator certainly did not take the debit, so no rollback is sent.
# Any other answer to a debit gets a rollback too, as the hub88 rules advise: it costs nothing.
_DEBIT_NOT_TAKEN = frozenset(
    {
        ReplyStatus.INSUFFICIENT_FUNDS,
        ReplyStatus.LIMIT_EXCEEDED,
        ReplyStatus.PLAYER_BLOCKED,
        ReplyStatus.PLAYER_NOT_FOUND,
        ReplyStatus.CURRENCY_MISMATCH,
    }
)
MAX_BACKOFF_S = 300.0
# Answers that say the request itself was not accepted (our key or our body), not the money:
# owed money and cancellations are sent again until the operator takes them.
_NOT_ACCEPTED = frozenset({ReplyStatus.INVALID_SIGNATURE, ReplyStatus.INVALID_REQUEST})


def cancel_of(debit: Transfer) -> Transfer:
    """Return the rollback that cancels a debit whose outcome is unknown, with a stable id."""
    cancel_id = uuid.uuid5(TRANSACTION_NAMESPACE, f"cancel|{debit.transaction_id}")
    return Transfer(
        type=TransferType.ROLLBACK,
        transaction_id=str(cancel_id),
        provider=debit.provider,
        operator=debit.operator,
        player_id=debit.player_id,
        currency=debit.currency,
        amount_minor=debit.amount_minor,
        round_id=debit.round_id,
        game_id=debit.game_id,
        reference_transaction_id=debit.transaction_id,
        reverses=TransferType.DEBIT,
    )


def _signed(transfer: Transfer) -> int:
    gives = transfer.type is TransferType.CREDIT or (
        transfer.type is TransferType.ROLLBACK and transfer.reverses is TransferType.DEBIT
    )
    return transfer.amount_minor if gives else -transfer.amount_minor


class Forwarder:
    """Turns the operator's answers into stored outcomes; shared by requests and the outbox."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def settle(
        self, conn: Connection, op_id: int, transfer: Transfer, reply: Reply
    ) -> Result | RejectedError:
        """Record a definite answer for a pending operation; call inside a transaction."""
        if reply.ok:
            # A debit counts in its round only once applied; credits and rollbacks were counted
            # when first taken, so that a rollback racing them sees the round as settled.
            change = "bet" if transfer.type is TransferType.DEBIT else None
            row = await ledger.settle_applied(
                conn, op_id, reply.balance_minor, _signed(transfer), change, transfer.amount_minor
            )
            return Result(
                row["transaction_id"], row["currency"], reply.balance_minor, processed_at=row["created_at"]
            )
        reason = reply.reason
        row = await ledger.finish(conn, op_id, State.REJECTED, reason, reply.balance_minor)
        await self._undo_intent(conn, row, transfer)
        return RejectedError(reason, reply.status.value, reply.balance_minor)

    async def _undo_intent(self, conn: Connection, row: asyncpg.Record, transfer: Transfer) -> None:
        """Take back the round changes a credit or rollback counted when it was first taken."""
        key = (row["provider"], row["operator"], row["player_id"])
        if transfer.type is TransferType.CREDIT:
            await ledger.change_round(conn, *key, row["round_id"], "unwin", transfer.amount_minor)
        elif transfer.type is TransferType.ROLLBACK and transfer.reference_transaction_id:
            target = await conn.fetchrow(
                "SELECT id, round_id FROM croupier.operations WHERE transaction_id = $1",
                uuid.UUID(transfer.reference_transaction_id),
            )
            if target is not None:
                await ledger.mark_reversed(conn, target["id"], reversed_=False)
                change = "unrefund" if transfer.reverses is TransferType.DEBIT else "win"
                await ledger.change_round(conn, *key, target["round_id"], change, transfer.amount_minor)

    async def forward(
        self,
        engine: Engine,
        policy: OperatorPolicy,
        backend: OperatorWallet,
        op_id: int,
        transfer: Transfer,
    ) -> Result:
        """Call the operator for a pending operation, settle what it answers, and return or raise."""
        is_debit = transfer.type is TransferType.DEBIT
        deadline_s = policy.debit_deadline_s if is_debit else policy.credit_deadline_s
        # No database connection is held while the operator thinks: the pool serves others.
        try:
            reply: Reply | None = await backend.transfer(None, transfer, deadline_s)
        except UnavailableError:
            reply = None

        async def record(conn: Connection) -> Outcome:
            row = await ledger.lock_operation(conn, op_id)
            if row["state"] != State.PENDING.value:
                answer = self._from_row(row)
            elif is_debit:
                answer = await self._settle_debit(conn, op_id, transfer, reply)
            else:
                answer = await self._settle_owed(conn, policy, row, transfer, reply)
            return Outcome(error=answer) if isinstance(answer, Exception) else Outcome(result=answer)

        # The answers of many requests share the engine's commit, as their intents did.
        outcome = await engine.run(record)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    async def _settle_debit(
        self, conn: Connection, op_id: int, transfer: Transfer, reply: Reply | None
    ) -> Result | RejectedError:
        definite = reply is not None and (reply.ok or reply.status in _DEBIT_NOT_TAKEN)
        # The outbox row is cancelled only if no worker has begun cancelling the debit already.
        if reply is not None and definite and await ledger.cancel_untouched(conn, op_id):
            return await self.settle(conn, op_id, transfer, reply)
        # Unknown, refused oddly, or the outbox already began cancelling it: the bet is rolled
        # back at the operator and refused here, never left half-applied.
        await ledger.hurry(conn, op_id)
        await ledger.finish(conn, op_id, State.REJECTED, Reason.OPERATOR_UNKNOWN)
        return RejectedError(Reason.OPERATOR_UNKNOWN, "the operator's wallet did not answer in time")

    async def _settle_owed(
        self,
        conn: Connection,
        policy: OperatorPolicy,
        row: asyncpg.Record,
        transfer: Transfer,
        reply: Reply | None,
    ) -> Result | Exception:
        op_id = row["id"]
        if reply is not None and reply.status in _NOT_ACCEPTED:
            reply = None  # owed money is never given up because our key or body was refused
        if reply is not None:
            # A definite answer: whatever the outbox does with its copy, the operator dedupes it.
            await ledger.cancel(conn, op_id)
            return await self.settle(conn, op_id, transfer, reply)
        await ledger.hurry(conn, op_id)
        await ledger.finish(conn, op_id, State.QUEUED)
        if policy.answer_after_operator:
            return UnavailableError("taken, and queued for delivery to the operator")
        last = await ledger.last_known_balance(conn, row["operator"], row["player_id"])
        hint = None if last is None else last + _signed(transfer)
        return Result(
            row["transaction_id"], row["currency"], hint, queued=True, processed_at=row["created_at"]
        )

    @staticmethod
    def _from_row(row: asyncpg.Record) -> Result | Exception:
        """Answer from what the outbox worker already settled."""
        if row["state"] == State.APPLIED.value:
            return Result(
                row["transaction_id"], row["currency"], row["balance_minor"], processed_at=row["created_at"]
            )
        if row["state"] == State.QUEUED.value:
            return Result(
                row["transaction_id"],
                row["currency"],
                row["balance_minor"],
                queued=True,
                processed_at=row["created_at"],
            )
        reason = Reason(row["reason"]) if row["reason"] else Reason.OPERATOR_UNKNOWN
        return RejectedError(reason, reason.value, row["balance_minor"])

    async def deliver(
        self,
        conn: Connection,
        backend: OperatorWallet,
        item: asyncpg.Record,
        timeout_s: float,
    ) -> bool:
        """Deliver one leased outbox row; return whether it is finished."""
        transfer = transfer_from_payload(orjson.loads(item["payload"]))
        action = item["action"]
        sent = cancel_of(transfer) if action == "cancel_debit" else transfer
        if item["attempts"] > 1:
            self.metrics.operator_retries.labels(item["operator"], sent.type.value).inc()
        try:
            reply: Reply | None = await backend.transfer(conn, sent, timeout_s)
        except UnavailableError as exc:
            reply, error = None, str(exc)
        if reply is not None and reply.status in _NOT_ACCEPTED:
            error = f"operator did not accept the request: {reply.status.value}"
            reply = None
        async with conn.transaction():
            row = await ledger.lock_operation(conn, item["operation_id"])
            if reply is None:
                backoff_s = min(MAX_BACKOFF_S, 2.0 ** min(item["attempts"], 9))
                await ledger.retry_later(conn, item["id"], backoff_s, error)
                self.metrics.outbox_delivered.labels(item["operator"], action, "retry").inc()
                return False
            pending = row["state"] in (State.PENDING.value, State.QUEUED.value)
            # A pending operation's provider has no answer yet: a refusal is simply its answer.
            answered_by_refusal = row["state"] == State.PENDING.value and action != "cancel_debit"
            if action == "cancel_debit":
                if pending:
                    await ledger.finish(conn, row["id"], State.REJECTED, Reason.OPERATOR_UNKNOWN)
            elif pending and (reply.ok or answered_by_refusal):
                await self.settle(conn, row["id"], transfer, reply)
            # A queued operation the provider was told succeeded stays queued when the operator
            # refuses it: the row goes dead, the dead-letter gauge alerts, a person reconciles.
            done = "delivered" if reply.ok or answered_by_refusal else "dead"
            if done == "dead":
                log.error(
                    "operator %s refused %s %s: %s",
                    item["operator"],
                    action,
                    sent.transaction_id,
                    reply.status.value,
                )
            await ledger.outbox_done(conn, item["id"], done, None if reply.ok else reply.status.value)
            self.metrics.outbox_delivered.labels(item["operator"], action, done).inc()
            return True
