"""How fast the bot may call: a token bucket whose waiters are served by priority, and backoff."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class Priority(IntEnum):
    """Whose turn comes first when calls wait for a token: the lowest value."""

    LOOKUP = 0  # a person is waiting for the answer
    PAGE = 1  # one page of clips serves a whole polling round
    POLL = 2  # one clip's own poll
    MEDIA = 3  # a finished clip's video: it may wait, polls may not


# A Retry-After this short (from Slack or Rhombus) is waited out while a person waits for an
# answer, rather than telling them to try again.
SHORT_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class Backoff:
    """Delays growing geometrically with each attempt, capped, spread at random.

    Attempt `n` waits `base * factor ** n`, at most `cap`, multiplied by a factor between
    `spread[0]` and `spread[1]` picked by `draw` (a random number in [0, 1), passed in so the
    delays stay a pure function of their inputs): retries that failed together do not all come
    back at the same moment.
    """

    base: float
    factor: float
    cap: float
    spread: tuple[float, float] = (0.5, 1.0)

    def delay(self, attempt: int, draw: float) -> float:
        """Seconds to wait before attempt number `attempt` (counted from 1)."""
        # The exponent is bounded so a long outage cannot overflow a float.
        grown = min(self.cap, self.base * self.factor ** min(attempt, 64))
        low, high = self.spread
        return grown * (low + (high - low) * draw)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `pause` stops it for a while.

    Waiters are served by priority (lowest first), in arrival order within one priority.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and room for one token")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def pause(self, seconds: float) -> None:
        """Hand out nothing for `seconds` (a 429's Retry-After), and start again from empty."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._tokens = 0.0
        self._serve()

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def waiting(self) -> int:
        """How many calls wait for a token."""
        return sum(not future.done() for _, _, future in self._waiters)

    def wait_time(self) -> float:
        """Seconds until a token is available (0: one is available now)."""
        now = self._clock()
        self._refill(now)
        if now < self._paused_until:
            return self._paused_until - now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def try_take(self) -> bool:
        """Take a token if one is available now and nobody is waiting for it."""
        if self._has_waiters() or self.wait_time() > 0:
            return False
        self._tokens -= 1
        return True

    def refund(self) -> None:
        """Give back a token that was taken but not used."""
        self._tokens = min(self.burst, self._tokens + 1)
        self._serve()

    async def take(self, priority: int = Priority.POLL) -> None:
        """Wait for a token and take it; lower priorities first, then in order of arrival."""
        if self.try_take():
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), future))
        if self._timer is None:
            self._serve()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Cancelled just after being handed a token: it goes to the next in line.
                self.refund()
            future.cancel()  # still in line: leave it to be skipped
            raise

    def _has_waiters(self) -> bool:
        # Cancelled waiters leave their entry behind; drop them once they reach the front.
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        return bool(self._waiters)

    def _serve(self) -> None:
        """Hand out the tokens there are, then set a timer for the next one if anyone waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._has_waiters():
            if (wait := self.wait_time()) > 0:
                self._timer = self._waiters[0][2].get_loop().call_later(wait, self._on_timer)
                return
            self._tokens -= 1
            _, _, future = heapq.heappop(self._waiters)
            future.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._serve()

    def _refill(self, now: float) -> None:
        start = max(self._updated, self._paused_until) if now >= self._paused_until else now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - start) * self.rate)
        self._updated = now
