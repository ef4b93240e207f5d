"""The wallet core: applies each canonical operation exactly once and forwards it to the operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from wallet import ledger, limits, rules
from wallet.backends.base import OperatorWallet
from wallet.db import Connection
from wallet.engine import Engine, Job, Outcome
from wallet.errors import (
    InProgressError,
    InvalidRequestError,
    MismatchError,
    Reason,
    RejectedError,
    UnavailableError,
)
from wallet.forwarding import Forwarder
from wallet.metrics import Metrics
from wallet.money import CurrencyTable, UnknownCurrencyError
from wallet.operations import (
    Kind,
    Operation,
    Result,
    State,
    Transfer,
    TransferType,
    transfer_for,
    transfer_payload,
    with_balance,
)
from wallet.policy import Capabilities, OperatorPolicy

MAX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class OperatorRuntime:
    """One operator's policy and the backend that holds its players' money."""

    policy: OperatorPolicy
    backend: OperatorWallet


def _check_ids(op: Operation) -> None:
    """Refuse an id that is missing, too long, or holds a character PostgreSQL text cannot store."""
    named: tuple[tuple[str, str | None, bool], ...] = (
        ("external id", op.external_id, True),
        ("player id", op.player_id, True),
        ("round id", op.round_id, False),
        ("game id", op.game_id, False),
        ("reference id", op.reference_id, False),
        ("campaign id", op.campaign_id, False),
    )
    for label, text, keyed in named:
        if keyed and (not text or len(text) > MAX_ID_LENGTH):
            raise InvalidRequestError(f"{label} must be 1 to {MAX_ID_LENGTH} characters")
        # PostgreSQL text cannot hold NUL: caught here it is the caller's mistake, not our fault.
        if text is not None and "\x00" in text:
            raise InvalidRequestError(f"{label} must not contain a NUL character")


class Wallet:
    """Applies canonical operations against the ledger and each operator's wallet backend."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        operators: Mapping[str, OperatorRuntime],
        currencies: CurrencyTable,
        metrics: Metrics,
        *,
        window_s: float = 0.0,
        max_batch: int = 256,
        writers: int = 1,
    ) -> None:
        self.pool = pool
        self.operators = operators
        self.currencies = currencies
        self.forwarder = Forwarder(metrics)
        self.engine = Engine(
            pool, self._one_by_one, metrics, window_s=window_s, max_batch=max_batch, writers=writers
        )

    def runtime(self, operator: str) -> OperatorRuntime:
        """Return an operator's runtime, or refuse a request that names an unknown operator."""
        try:
            return self.operators[operator]
        except KeyError:
            raise InvalidRequestError(f"unknown operator {operator!r}") from None

    async def balance(self, operator: str, player_id: str, currency: str) -> int:
        """Return a player's balance from the operator's backend."""
        rt = self.runtime(operator)
        self._check_currency(currency)
        async with self.pool.acquire() as conn:
            reply = await rt.backend.balance(conn, operator, player_id, currency)
        if not reply.ok or reply.balance_minor is None:
            raise RejectedError(reply.reason, reply.status.value, reply.balance_minor)
        return reply.balance_minor

    async def execute(self, op: Operation, caps: Capabilities) -> Result:
        """Apply one money operation exactly once and return its result, or raise a WalletError."""
        if op.kind is Kind.BALANCE:
            balance = await self.balance(op.operator, op.player_id, op.currency)
            return Result(op.transaction_id, op.currency, balance)
        rt = self.runtime(op.operator)
        self._validate(op, caps)
        begun = await self.engine.submit(op, caps, rt.policy, rt.backend)
        if begun.error is not None and not isinstance(begun.error, RejectedError):
            raise begun.error
        if begun.needs_balance:
            # The operator's own balance (seamless), asked after the commit and outside the batch.
            async with self.pool.acquire() as conn:
                await self._fill_balance(conn, rt, op, begun)
        if begun.transfer is not None:
            return await self.forwarder.forward(
                self.engine, rt.policy, rt.backend, begun.op_id, begun.transfer
            )
        if begun.error is not None:
            raise begun.error
        assert begun.result is not None
        return begun.result

    def _check_currency(self, code: str) -> None:
        try:
            self.currencies.get(code)
        except UnknownCurrencyError as exc:
            raise InvalidRequestError(str(exc)) from None

    def _validate(self, op: Operation, caps: Capabilities) -> None:
        self._check_currency(op.currency)
        if op.scope_by_player != caps.ids_scoped_by_player:
            raise InvalidRequestError("operation scope does not match the provider's capabilities")
        _check_ids(op)
        if op.kind in (Kind.DEBIT, Kind.CREDIT):
            if op.amount_minor is None or op.amount_minor < 0:
                raise InvalidRequestError("amount must be zero or more")
            if not op.round_id:
                raise InvalidRequestError("round id is required")
        if op.kind is Kind.ROLLBACK and not op.reference_id:
            raise InvalidRequestError("a rollback names the transaction it reverses")
        if op.kind is Kind.ROLLBACK and op.reference_kind is Kind.CREDIT and not caps.rollback_of_credit:
            raise InvalidRequestError("this protocol has no rollback of a credit")

    async def _one_by_one(self, conn: Connection, job: Job) -> Outcome:
        """Apply one operation the engine's batch statements do not decide, inside its batch."""
        assert job.op is not None
        rt = self.runtime(job.op.operator)
        outcome = await self._begin(conn, rt, job.op, job.caps)
        if outcome.needs_balance and rt.backend.in_database:
            # Read in the batch right after this operation, as one by one would: the balance of
            # its moment, not one that shows the operations after it in the same batch.
            await self._fill_balance(conn, rt, job.op, outcome)
        return outcome

    async def _begin(
        self, conn: Connection, rt: OperatorRuntime, op: Operation, caps: Capabilities
    ) -> Outcome:
        async with conn.transaction():
            op_id = await ledger.claim(conn, op, State.PENDING)
            if op_id is None:
                stored = await ledger.find(conn, op.provider, op.scope, op.kind, op.external_id)
                assert stored is not None
                return await self._replay(conn, rt, op, stored)
            try:
                transfer = await self._plan(conn, op, op_id, caps)
            except RejectedError as exc:
                await ledger.finish(conn, op_id, State.REJECTED, exc.reason, exc.balance_minor)
                # Protocols answer a refusal with the balance; fill it in after the commit.
                return Outcome(error=exc, needs_balance=exc.balance_minor is None)
            if transfer is None:
                # Nothing moves (end of round, tombstone, nothing left to reverse): answer with the balance.
                row = await ledger.finish(conn, op_id, State.APPLIED)
                tombstone = await self._is_tombstone(conn, op)
                result = Result(
                    op.transaction_id, op.currency, None, tombstone=tombstone, processed_at=row["created_at"]
                )
                return Outcome(result=result, needs_balance=True)
            if rt.backend.in_database:
                reply = await rt.backend.transfer(conn, transfer, 0.0)
                outcome = await self.forwarder.settle(conn, op_id, transfer, reply)
                if isinstance(outcome, RejectedError):
                    return Outcome(error=outcome)
                return Outcome(result=outcome)
            action = "cancel_debit" if transfer.type is TransferType.DEBIT else transfer.type.value
            await ledger.schedule(
                conn,
                op_id,
                op.operator,
                action,
                transfer_payload(transfer),
                rt.policy.recovery_after_s,
            )
            return Outcome(op_id=op_id, transfer=transfer)

    async def _plan(self, conn: Connection, op: Operation, op_id: int, caps: Capabilities) -> Transfer | None:
        """Check the rules for a new operation and return the transfer it needs, if any."""
        policy = self.runtime(op.operator).policy
        if op.kind is Kind.DEBIT:
            # Responsible gaming is decided here, in the transaction that claims the key, so a
            # refusal is exact and stored like any other; wins and refunds never look at it. The
            # player's limits come back with the round: one statement for both.
            bet_round = await ledger.lock_bet_round(
                conn, op, ends_when_settled=caps.rounds_end_when_bets_settled
            )
            player = limits.for_bet(policy, op, bet_round)
            rules.check_debit(op, policy, bet_round, player)
            await limits.check_loss(conn, op, op_id, player)
            return transfer_for(op, TransferType.DEBIT, op.amount_minor or 0)
        if op.kind is Kind.CREDIT:
            create = not rules.credit_needs_bet(op, caps)
            round_ = await ledger.lock_round(
                conn, op, op.round_id, create=create, ends_when_settled=caps.rounds_end_when_bets_settled
            )
            try:
                rules.check_credit(op, caps, round_)
            except RejectedError as exc:
                # A refusal for want of a bet is final only once the round's bets have settled.
                await self._unless_unsettled(conn, policy, op, op.round_id, Kind.DEBIT, exc)
            game_id = op.game_id or (round_["game_id"] if round_ is not None else None)
            # A credit's intent counts at once: a rollback of its round's bet is now refused.
            await ledger.change_round(
                conn,
                op.provider,
                op.operator,
                op.player_id,
                op.round_id,
                "win",
                op.amount_minor or 0,
            )
            return transfer_for(op, TransferType.CREDIT, op.amount_minor or 0, game_id=game_id)
        if op.kind is Kind.ROLLBACK:
            return await self._plan_rollback(conn, op, caps)
        round_ = await ledger.lock_round(conn, op, op.round_id, create=True)
        if round_ is not None:
            await ledger.change_round(conn, op.provider, op.operator, op.player_id, op.round_id, "close")
        return None

    async def _plan_rollback(self, conn: Connection, op: Operation, caps: Capabilities) -> Transfer | None:
        assert op.reference_id is not None
        target_kind = op.reference_kind
        if target_kind is Kind.DEBIT:
            # The rollback claims the debit's own key: a debit arriving later, or at this very
            # moment on another node, meets the UNIQUE constraint and finds the tombstone.
            tombstone = Operation(
                kind=Kind.DEBIT,
                provider=op.provider,
                operator=op.operator,
                player_id=op.player_id,
                currency=op.currency,
                external_id=op.reference_id,
                amount_minor=op.amount_minor,
                round_id=op.round_id,
                game_id=op.game_id,
                scope_by_player=op.scope_by_player,
            )
            if await ledger.claim(conn, tombstone, State.TOMBSTONE) is not None:
                return None
        target = await ledger.find(conn, op.provider, op.scope, target_kind, op.reference_id, lock=True)
        if target is None:
            raise RejectedError(Reason.BET_NOT_FOUND, "no such transaction to roll back")
        if (target["operator"], target["player_id"]) != (op.operator, op.player_id):
            raise MismatchError("player")
        if (
            op.amount_minor is not None
            and target["state"] == State.APPLIED.value
            and (op.amount_minor != target["amount_minor"])
        ):
            raise MismatchError("amount")
        round_ = await ledger.lock_round(conn, op, target["round_id"], create=False)
        try:
            if not rules.check_rollback_target(caps, target, round_):
                return None
        except RejectedError as exc:
            if target["kind"] != Kind.DEBIT.value:
                raise
            # "Already settled" counts a win still in flight, which the operator may yet refuse.
            policy = self.runtime(op.operator).policy
            await self._unless_unsettled(conn, policy, op, target["round_id"], Kind.CREDIT, exc)
        await ledger.mark_reversed(conn, target["id"])
        change = "refund" if target_kind is Kind.DEBIT else "unwin"
        await ledger.change_round(
            conn,
            op.provider,
            op.operator,
            op.player_id,
            target["round_id"],
            change,
            target["amount_minor"],
        )
        reverses = TransferType.DEBIT if target_kind is Kind.DEBIT else TransferType.CREDIT
        return transfer_for(
            op,
            TransferType.ROLLBACK,
            target["amount_minor"],
            round_id=target["round_id"],
            game_id=op.game_id or target["game_id"],
            reference=str(target["transaction_id"]),
            reverses=reverses,
        )

    @staticmethod
    async def _unless_unsettled(
        conn: Connection,
        policy: OperatorPolicy,
        op: Operation,
        round_id: str | None,
        kind: Kind,
        refusal: RejectedError,
    ) -> None:
        """Raise InProgressError if the refusal depends on an operation not yet settled, else the refusal."""
        # Nothing is stored for an in-progress answer (the transaction rolls back), so the
        # provider's retry after the operation settles is decided afresh.
        queued = policy.answer_after_operator
        if await ledger.unsettled_in_round(conn, op, round_id, kind, queued=queued):
            raise InProgressError(f"a {kind.value} of this round is still in progress") from refusal
        raise refusal

    async def _is_tombstone(self, conn: Connection, op: Operation) -> bool:
        if op.kind is not Kind.ROLLBACK or op.reference_kind is not Kind.DEBIT:
            return False
        assert op.reference_id is not None
        target = await ledger.find(conn, op.provider, op.scope, Kind.DEBIT, op.reference_id)
        return target is not None and target["state"] == State.TOMBSTONE.value

    async def _replay(
        self, conn: Connection, rt: OperatorRuntime, op: Operation, stored: asyncpg.Record
    ) -> Outcome:
        """Answer a repeat of a stored operation; no money moves."""
        state = State(stored["state"])
        if state is State.TOMBSTONE:
            error = RejectedError(Reason.TRANSACTION_ROLLED_BACK, "this transaction was rolled back")
            return Outcome(error=error)
        rules.check_repeat(op, stored)
        if state is State.PENDING or (state is State.QUEUED and rt.policy.answer_after_operator):
            raise InProgressError("the same operation is being applied")
        if state is State.REJECTED:
            reason = Reason(stored["reason"])
            error = RejectedError(reason, reason.value, stored["balance_minor"], replay=True)
            return Outcome(error=error, needs_balance=True)
        result = Result(
            op.transaction_id,
            op.currency,
            stored["balance_minor"],
            replay=True,
            tombstone=await self._is_tombstone(conn, op),
            queued=state is State.QUEUED,
            processed_at=stored["created_at"],
        )
        return Outcome(result=result, needs_balance=True)

    @staticmethod
    async def _current_balance(conn: Connection, rt: OperatorRuntime, op: Operation) -> int | None:
        try:
            reply = await rt.backend.balance(conn, op.operator, op.player_id, op.currency)
        except UnavailableError:
            return None
        return reply.balance_minor if reply.ok else None

    async def _fill_balance(
        self, conn: Connection, rt: OperatorRuntime, op: Operation, outcome: Outcome
    ) -> None:
        """Give an answer that carries the current balance (a replay, a refusal, no move) that balance."""
        if outcome.result is not None:
            outcome.result = await self._with_current_balance(conn, rt, op, outcome.result)
        elif isinstance(outcome.error, RejectedError):
            # A replayed refusal carries the current balance, like a replayed success.
            current = await self._current_balance(conn, rt, op)
            if current is not None:
                outcome.error.balance_minor = current
        outcome.needs_balance = False

    async def _with_current_balance(
        self, conn: Connection, rt: OperatorRuntime, op: Operation, result: Result
    ) -> Result:
        balance = await self._current_balance(conn, rt, op)
        if balance is None:
            balance = result.balance_minor
        if balance is None:
            balance = await ledger.last_known_balance(conn, op.operator, op.player_id)
        return with_balance(result, balance)
