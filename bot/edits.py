"""The per-workspace queue every status message edit goes through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Send = Callable[[], Awaitable[float | None]]

logger = logging.getLogger(__name__)

# Slack limits chat.update per workspace per minute ("Tier 3: 50+ per minute",
# https://docs.slack.dev/apis/web-api/rate-limits); the queue counts over a rolling minute.
WINDOW_SECONDS = 60.0
# After a 429 the edits allowed in a rolling minute fall to this share of what they were, and
# once the Retry-After has passed they climb back by one every RECOVERY_SECONDS.
DECREASE = 0.5
RECOVERY_SECONDS = 5.0
# Progress edits leave this share of the rolling minute free, so that ends arriving together go
# at once rather than one by one as older edits leave the minute.
RESERVE_SHARE = 1 / 6
# Ends arriving faster over the last half of the minute than over the first half are a rush
# beginning: progress leaves them that many more slots.
TREND_SECONDS = WINDOW_SECONDS / 2
# Edits on their way at once: enough that a slow answer (an end's thread reply and database
# writes come with it) does not hold the next end back, few enough to be gentle with Slack.
MAX_SENDING = 4


class EditPacing:
    """When a workspace's next edit may go, by the bot's own count of Slack's rolling minute.

    At most `limit` edits go in any rolling minute: `per_minute` (whole edits; a budget under one
    a minute is one edit per longer window), or fewer for a while after a 429. An edit counts
    from when it is sent until a window after it was answered, so the count never frees a slot
    before Slack's does. An end goes as soon as the minute has room. A progress edit also waits
    for its turn in an even spacing, so that progress never fills the minute in a burst (which
    would come back as a burst of room, one minute later, for progress to fill again), and goes
    only while the minute keeps a reserve free for ends.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("a workspace needs a positive number of edits a minute")
        self.most = max(1, math.floor(per_minute))
        self.window = WINDOW_SECONDS * self.most / per_minute
        self._clock = clock
        self._answered: deque[float] = deque()  # when each edit of the rolling window was answered
        self._sending = 0
        self._ends: deque[float] = deque()  # when each end of the rolling window arrived
        self._last_progress = -math.inf
        self._paused_until = -math.inf
        self._lowered_to: int | None = None  # the limit right after the last 429
        self._climbing_from = -math.inf  # when it started to climb back

    @property
    def limit(self) -> int:
        """Edits allowed in a rolling minute now."""
        if self._lowered_to is None:
            return self.most
        climbed = max(0.0, self._clock() - self._climbing_from) // RECOVERY_SECONDS
        limit = min(self.most, self._lowered_to + int(climbed))
        if limit == self.most:
            self._lowered_to = None
        return limit

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def reserve(self) -> int:
        """Slots of the rolling minute progress edits leave free for ends."""
        now = self._clock()
        self._forget(now)
        recent = sum(arrived > now - TREND_SECONDS for arrived in self._ends)
        rush = max(0, recent - (len(self._ends) - recent))
        return math.floor(self.limit * RESERVE_SHARE) + rush

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds`."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def assume_spent(self) -> None:
        """Count the rolling minute as used in full, evenly, by a sender this one cannot see.

        Another replica held the workspace until now: Slack still counts its edits, so this
        one starts at the steady rate rather than with a minute's budget at once.
        """
        now = self._clock()
        step = self.window / self.most
        spent = (now - self.window + step * (index + 1) for index in range(self.most))
        self._answered = deque(sorted([*self._answered, *spent]))

    def slow_down(self, seconds: float) -> None:
        """A send asked for a pause (a 429's Retry-After, or a backoff after a Slack failure).

        Pause, and allow fewer edits a minute for a while. Edits sent before the first 429 was
        answered get theirs too: within one pause the limit falls only once.
        """
        if self.paused_for == 0:
            self._lowered_to = max(1, math.floor(self.limit * DECREASE))
        self.pause(seconds)
        self._climbing_from = self._paused_until

    def end_arrived(self) -> None:
        """Count a new end waiting to be shown, for the reserve."""
        self._ends.append(self._clock())

    def sending(self, *, final: bool) -> None:
        """Count an edit being sent now."""
        self._sending += 1
        if not final:
            self._last_progress = self._clock()

    def answered(self) -> None:
        """Count an edit sent earlier as answered now."""
        self._sending -= 1
        self._answered.append(self._clock())

    def wait(self, *, final: bool) -> float:
        """Seconds until an end (`final`) or a progress edit may go (0: now).

        A positive answer may be shorter than the real wait: it is the next moment worth asking
        again. Infinity: not before an edit on its way is answered.
        """
        now = self._clock()
        self._forget(now)
        if now < self._paused_until:
            return self._paused_until - now
        limit = self.limit
        keep_free = 0 if final else self.reserve
        # How many answered edits must leave the minute before this one may go.
        leaving = len(self._answered) + self._sending + 1 + keep_free - limit
        if leaving <= 0:
            ready = now
        elif leaving <= len(self._answered):
            ready = self._answered[leaving - 1] + self.window
        else:
            ready = math.inf
        if not final:
            ready = max(ready, self._last_progress + self.window / limit)
            if self._ends:
                # The reserve shrinks as ends leave the minute, or its second half.
                ready = min(ready, self._ends[0] + self.window)
                recent = [at for at in self._ends if at > now - TREND_SECONDS]
                if recent:
                    ready = min(ready, recent[0] + TREND_SECONDS)
        if self._lowered_to is not None:
            # The limit climbs one step.
            steps = max(0.0, now - self._climbing_from) // RECOVERY_SECONDS + 1
            ready = min(ready, self._climbing_from + steps * RECOVERY_SECONDS)
        return max(0.0, ready - now)

    def _forget(self, now: float) -> None:
        # As Slack counts: an edit leaves the minute exactly one window after it went.
        while self._answered and self._answered[0] <= now - self.window:
            self._answered.popleft()
        while self._ends and self._ends[0] <= now - self.window:
            self._ends.popleft()


class EditQueue:
    """Sends one workspace's message edits within Slack's limit: ends first, then progress in turn.

    Each message sends only its newest state: `submit` replaces an edit still waiting for the
    same message, and a message has one edit on its way at a time. Ends (`final`) go in the
    order they arrived; while one waits, no progress edit goes. An end replaces its message's
    waiting progress edit. Progress edits take turns: the message that has waited longest goes
    first, keeping its place when its state changes again. Up to MAX_SENDING edits are on their
    way at once, so a slow answer does not hold the next edit back. A `send` returns None when
    done, or seconds to pause the whole workspace (Slack's Retry-After, or a backoff after a
    Slack failure), which also makes the queue send fewer edits a minute for a while.
    """

    def __init__(
        self, name: str, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.pacing = EditPacing(per_minute, clock)
        # Insertion-ordered: an end's place is its arrival, a progress edit's its first wait.
        self._ends: dict[str, Send] = {}
        self._progress: dict[str, Send] = {}
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.sent = 0

    def submit(self, key: str, send: Send, *, final: bool) -> None:
        """Queue the newest edit of message `key`, replacing one still waiting."""
        if final:
            self._progress.pop(key, None)
            if key not in self._ends:
                self.pacing.end_arrived()
                self._wakeup.set()  # it goes before the progress edit being waited for
            self._ends[key] = send
        else:
            self._ends.pop(key, None)
            self._progress[key] = send
            if self.waiting == 1:
                self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"edits:{self.name}")

    def discard(self, key: str) -> None:
        """Drop a waiting edit of message `key` (its tracking ended)."""
        self._ends.pop(key, None)
        self._progress.pop(key, None)

    def next_edit(self) -> tuple[str, bool] | None:
        """The message whose edit goes next, and whether it is an end (None: none may go)."""
        for key in self._ends:
            if key not in self._sending:
                return key, True
        if self._ends:
            return None  # the waiting end goes once its message's last edit is answered
        for key in self._progress:
            if key not in self._sending:
                return key, False
        return None

    @property
    def waiting(self) -> int:
        """How many messages have an edit waiting."""
        return len(self._ends) + len(self._progress)

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being sent."""
        return self.waiting == 0 and not self._sending

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds`."""
        self.pacing.pause(seconds)

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        return self.pacing.paused_for

    def taken_over(self, seconds: float) -> None:
        """Another replica edited here until now: wait `seconds`, then go at the steady rate.

        The other replica is taken to have used the whole rolling minute.
        """
        self.pacing.pause(seconds)
        self.pacing.assume_spent()

    async def close(self) -> None:
        """Stop sending; edits still waiting are dropped (the database still has their state)."""
        tasks = [*self._sending.values(), *([self._worker] if self._worker is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            edit = self.next_edit() if len(self._sending) < MAX_SENDING else None
            wait = math.inf if edit is None else self.pacing.wait(final=edit[1])
            if edit is None or wait > 0:
                # Woken early by an end arriving, an edit answered, or the first edit after none.
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if math.isinf(wait) else wait):
                        await self._wakeup.wait()
                continue
            key, final = edit
            send = (self._ends if final else self._progress).pop(key)
            self.pacing.sending(final=final)
            self._sending[key] = asyncio.create_task(
                self._send(key, send), name=f"edit:{self.name}:{key}"
            )

    async def _send(self, key: str, send: Send) -> None:
        try:
            pause = await send()
        except Exception:
            logger.exception("edit of %s failed unexpectedly", key)
            pause = None
        finally:
            del self._sending[key]
            self.pacing.answered()
            self._wakeup.set()
        self.sent += 1
        if pause:
            self.pacing.slow_down(pause)
            logger.warning(
                "workspace %s: pausing edits for %.0f s, then at most %d a minute for a while",
                self.name,
                pause,
                self.pacing.limit,
            )
