"""Rows written behind: what polls see reaches the trackings table in batches, shortly after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from bot.store import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.store import Store, Tracking

logger = logging.getLogger(__name__)

# What polls see is written in batches, at most this long after it was seen.
WRITE_BEHIND_SECONDS = 0.5
# After a failed batch write, the rows are kept and written again this much later.
WRITE_RETRY_SECONDS = 5.0


class WriteBehind:
    """Writes changed rows in batches, shortly after they change, retrying when refused.

    Followed clips change all the time; one transaction for whatever changed in the last half
    second costs the database far less than one per change. What a restart must not repeat is
    written at once with `Store.save` instead.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._unsaved: dict[str, Tracking] = {}
        self._writer: asyncio.Task[None] | None = None

    def save_later(self, tracking: Tracking) -> None:
        """Write the row with the next batch."""
        self._unsaved[tracking.id] = tracking
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon(), name="trackings-writer")

    async def flush(self) -> None:
        """Write what is waiting now (another process is about to read it)."""
        await self._write(retry=True)

    def drop(self, tracking_ids: Iterable[str]) -> None:
        """Forget those rows unwritten (another process follows them now, from the table)."""
        for tracking_id in tracking_ids:
            self._unsaved.pop(tracking_id, None)

    async def close(self) -> None:
        """Write what is waiting, once, and stop."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._write(retry=False)

    async def _write_soon(self) -> None:
        await asyncio.sleep(WRITE_BEHIND_SECONDS)
        # A failed write is retried on a timer; nothing else would signal the database is back.
        while not await self._write(retry=True):  # noqa: ASYNC110
            await asyncio.sleep(WRITE_RETRY_SECONDS)

    async def _write(self, *, retry: bool) -> bool:
        """Write every row waiting; False (rows kept if `retry`) when the database refused."""
        if not self._unsaved:
            return True
        batch, self._unsaved = self._unsaved, {}
        try:
            await self._store.save_many(batch.values())
        except asyncio.CancelledError:
            self._unsaved = batch | self._unsaved  # stopped mid-write: the last write has them
            raise
        except StoreError as error:
            logger.error(  # noqa: TRY400  # the reason is in the message; no traceback
                "cannot write %d tracking(s) to the database: %s%s",
                len(batch),
                error,
                "; retrying" if retry else "",
            )
            if retry:
                self._unsaved = batch | self._unsaved
            return False
        return True
