"""The lookup every adapter's error table needs: core error to native answer, and back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from wallet.errors import Reason, RejectedError, WalletError

N = TypeVar("N")


class ErrorTable(Generic[N]):
    """Native answers by refusal reason and by error class, with a default for bad requests."""

    def __init__(
        self,
        by_reason: Mapping[Reason, N],
        by_class: Sequence[tuple[type[WalletError], N]],
        default: N,
        code_of: Callable[[N], object],
    ) -> None:
        self.by_reason = by_reason
        self.by_class = by_class
        self.default = default
        self.code_of = code_of

    def native(self, error: WalletError) -> N:
        """Return the native answer for a core error (InvalidRequestError and the rest: the default)."""
        if isinstance(error, RejectedError):
            return self.by_reason[error.reason]
        for cls, answer in self.by_class:
            if isinstance(error, cls):
                return answer
        return self.default

    def reasons_for(self, code: object) -> frozenset[Reason]:
        """Return the core reasons answered with a native code."""
        return frozenset(r for r, answer in self.by_reason.items() if self.code_of(answer) == code)
