"""A byte budget shared by the requests in flight: the peer endpoint's bound on memory.

Each request reserves its body's declared length before reading a byte of it and gives it back
when its answer is ready; a request that does not fit waits in line (first come, first served,
so a large body is not starved by a stream of small ones) for at most a given time. Without it
every peer's burst is read and parsed at once: four 16 MiB bodies of comments took a node to
3.3 GB.

One event loop only: reservations and releases happen on the loop; no lock is needed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class NoRoom(Exception):
    """The reservation waited its whole time in line without getting room."""


class ByteBudget:
    """``capacity`` bytes, reserved with :meth:`hold` and given back when the block ends."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a byte budget needs a capacity of at least one byte")
        self.capacity = capacity
        self._free = capacity
        self._line: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def in_use(self) -> int:
        """Bytes reserved now."""
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        """Reservations waiting in line now."""
        return len(self._line)

    @asynccontextmanager
    async def hold(self, amount: int, wait: float) -> AsyncIterator[None]:
        """Reserve ``amount`` bytes for the block, waiting at most ``wait`` seconds for room.

        Raises :class:`NoRoom` when the wait runs out, ``ValueError`` for an amount the budget
        could never hold.
        """
        await self._reserve(amount, wait)
        try:
            yield
        finally:
            self._release(amount)

    async def _reserve(self, amount: int, wait: float) -> None:
        if not 0 <= amount <= self.capacity:
            raise ValueError(f"cannot reserve {amount} bytes of a budget of {self.capacity}")
        if not self._line and amount <= self._free:
            self._free -= amount
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        place = (amount, granted)
        self._line.append(place)
        try:
            async with asyncio.timeout(wait):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                self._release(amount)  # room came just as the wait ended: give it back
            else:
                self._line.remove(place)
                self._grant()  # the head of the line left: those behind it may fit now
            if isinstance(exc, TimeoutError):
                raise NoRoom(f"no room for {amount} bytes within {wait} s") from None
            raise

    def _release(self, amount: int) -> None:
        self._free += amount
        self._grant()

    def _grant(self) -> None:
        while self._line and self._line[0][0] <= self._free:
            amount, granted = self._line.popleft()
            self._free -= amount
            granted.set_result(None)


def _load_malloc_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def give_back_freed_memory() -> None:
    """Free what a large body left behind and return the C heap's free pages to the system.

    A refusal's traceback holds the frames that held the body's trees, in a reference cycle
    that only the cycle collector frees, and not soon: collected here at once. Then glibc's
    ``malloc_trim``: it keeps freed pages in the arena of the worker thread that used them, one
    arena per thread, so bodies processed one after another on different threads would add up in
    the node's resident memory as if they had been in flight together (measured: 140 MiB at rest,
    ~330 MiB after one 16 MiB body that failed verification, 164 MiB after this). Takes tens of
    milliseconds; run it off the event loop. The trim is skipped where the C library has none.
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
