"""Sources of uniform integers: the OS CSPRNG, replay and recording, and the unbiased helpers on top.

Every outcome in Croupier comes from ``Source.randbelow(n)``. The production source is
:class:`SecureSource`, which reads the operating system's CSPRNG (``os.urandom``, i.e. the
kernel's ``getrandom``) afresh for every draw. Nothing is buffered in user space, so there is no
user-space state to reseed or to duplicate across ``fork``: the kernel generator reseeds itself
from its entropy pool on its own schedule (Linux 5.18 and later re-key their ChaCha20 generator
from the input pool once a minute), and every process that calls it gets distinct bytes.
Each draw is therefore taken at the moment the game asks for it, never pre-generated.

Scaling to ``[0, n)`` is by rejection: take ``ceil(k / 8)`` bytes with ``k = bit_length(n - 1)``,
keep their top ``k`` bits as an integer below ``2**k``, and discard it when it is ``>= n``. Each
accepted value is equally likely; at least half of the draws are accepted. Never modulo, never
floats.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Callable, MutableSequence, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")

ByteReader = Callable[[int], bytes]


class Source(Protocol):
    """Anything that draws uniform integers."""

    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)``, ``n >= 1``, by rejection sampling."""
        ...


class ReplayMismatchError(Exception):
    """A replayed round asked for a different range than was recorded, or for more draws."""


def _check_range(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"range must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"range must be >= 1, got {n}")


def randbelow_from_bytes(read: ByteReader, n: int) -> int:
    """Draw a uniform integer in ``[0, n)`` from a byte stream by bit-mask rejection."""
    _check_range(n)
    if n == 1:
        return 0
    bits = (n - 1).bit_length()
    size = (bits + 7) // 8
    shift = size * 8 - bits
    while True:
        data = read(size)
        if len(data) != size:
            raise RuntimeError(f"byte stream returned {len(data)} bytes instead of {size}")
        value = int.from_bytes(data, "big") >> shift
        if value < n:
            return value


class StreamSource:
    """A source that scales a byte stream by rejection; the base of the secure and fair sources."""

    def __init__(self, read: ByteReader) -> None:
        self._read = read

    def read_bytes(self, size: int) -> bytes:
        """Return the next ``size`` raw bytes of the underlying stream, before any scaling."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        data = self._read(size)
        if len(data) != size:
            raise RuntimeError(f"byte stream returned {len(data)} bytes instead of {size}")
        return data

    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)`` by rejection sampling over the stream."""
        return randbelow_from_bytes(self._read, n)


class SecureSource(StreamSource):
    """The production generator: every draw reads the OS CSPRNG (``os.urandom``) afresh."""

    def __init__(self) -> None:
        # Looked up at construction, not import, so that the generator is always the current
        # os.urandom; no bytes are kept between draws (fork-safe, nothing to reseed in user space).
        super().__init__(os.urandom)


class RecordingSource:
    """Wraps a source and records every ``(n, value)`` it draws, in order."""

    def __init__(self, inner: Source) -> None:
        self._inner = inner
        self._draws: list[tuple[int, int]] = []

    @property
    def draws(self) -> list[tuple[int, int]]:
        """The draws so far, as ``(n, value)`` pairs (a copy)."""
        return list(self._draws)

    def randbelow(self, n: int) -> int:
        """Draw from the inner source and record it."""
        value = self._inner.randbelow(n)
        self._draws.append((n, value))
        return value


class ReplaySource:
    """Replays recorded draws; asking for a different range or one draw too many raises."""

    def __init__(self, draws: Sequence[tuple[int, int]]) -> None:
        self._draws = [(int(n), int(value)) for n, value in draws]
        for index, (n, value) in enumerate(self._draws):
            if n < 1 or not 0 <= value < n:
                raise ReplayMismatchError(f"draw {index}: value {value} is not in [0, {n})")
        self._position = 0

    @property
    def exhausted(self) -> bool:
        """Whether every recorded draw has been used."""
        return self._position == len(self._draws)

    @property
    def position(self) -> int:
        """How many draws have been replayed."""
        return self._position

    def randbelow(self, n: int) -> int:
        """Return the next recorded value, checking that it was drawn for the same range."""
        _check_range(n)
        if self.exhausted:
            raise ReplayMismatchError(f"draw {self._position}: the record has only {len(self._draws)} draws")
        recorded_n, value = self._draws[self._position]
        if recorded_n != n:
            raise ReplayMismatchError(f"draw {self._position}: range {n} asked, range {recorded_n} recorded")
        self._position += 1
        return value


def shuffle(source: Source, items: MutableSequence[T]) -> None:
    """Shuffle ``items`` in place by Fisher-Yates (Durstenfeld), one draw per position."""
    for i in range(len(items) - 1, 0, -1):
        j = source.randbelow(i + 1)
        items[i], items[j] = items[j], items[i]


def choice(source: Source, items: Sequence[T]) -> T:
    """Pick one item uniformly."""
    if not items:
        raise ValueError("cannot choose from an empty sequence")
    return items[source.randbelow(len(items))]


def weighted_index(source: Source, weights: Sequence[int]) -> int:
    """Pick an index with probability weight/total: ``randbelow(total)`` then bisect (no floats)."""
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"weights must be ints, got {type(weight).__name__}")
        if weight < 0:
            raise ValueError(f"weights must be >= 0, got {weight}")
    cumulative = list(itertools.accumulate(weights))
    if not cumulative or cumulative[-1] == 0:
        raise ValueError("weights must have a positive total")
    return bisect.bisect_right(cumulative, source.randbelow(cumulative[-1]))
