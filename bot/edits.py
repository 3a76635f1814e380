"""The per-workspace queue every status message edit goes through."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.budget import TokenBucket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _Pending:
    """One message's newest wanted state, ordered: final states first, then longest waiting."""

    not_final: bool
    since: float
    seq: int
    key: str = field(compare=False)
    send: Callable[[], Awaitable[float | None]] = field(compare=False)


class EditQueue:
    """Paces one workspace's message edits to its budget, newest state only, finals first.

    `submit` replaces any edit still waiting for the same message, keeping its place in line, so
    under pressure each message sends only its latest state and messages take turns. A `send`
    returns None when done, or seconds to pause the whole workspace (Slack's Retry-After).
    """

    def __init__(
        self, name: str, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._bucket = TokenBucket(per_minute / 60.0, max(1.0, per_minute / 20.0), clock)
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.sent = 0

    def submit(self, key: str, send: Callable[[], Awaitable[float | None]], *, final: bool) -> None:
        """Queue the newest edit of message `key`, replacing one still waiting."""
        waiting = self._pending.get(key)
        since = waiting.since if waiting is not None else self._clock()
        self._pending[key] = _Pending(not final, since, next(self._seq), key, send)
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"edits:{self.name}")

    def discard(self, key: str) -> None:
        """Drop a waiting edit of message `key` (its tracking ended)."""
        self._pending.pop(key, None)

    @property
    def waiting(self) -> int:
        """How many messages have an edit waiting."""
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being sent."""
        return not self._pending and self._in_flight == 0

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds`."""
        self._bucket.pause(seconds)

    @property
    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        return self._bucket.paused_for

    async def close(self) -> None:
        """Stop sending; edits still waiting are dropped (the database still has their state)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._bucket.take()
            if not self._pending:
                # Everything waiting was discarded meanwhile; keep the token for the next one.
                self._bucket.refund()
                continue
            entry = min(self._pending.values())
            del self._pending[entry.key]
            self._in_flight += 1
            try:
                pause = await entry.send()
            except Exception:
                logger.exception("edit of %s failed unexpectedly", entry.key)
                pause = None
            finally:
                self._in_flight -= 1
            self.sent += 1
            if pause:
                logger.warning("workspace %s: pausing edits for %.0f s", self.name, pause)
                self._bucket.pause(pause)
