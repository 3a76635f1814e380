"""The polling jobs: one APScheduler interval job per followed tracking, kept in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.interval import IntervalTrigger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Thousands of jobs are added in slices, letting the loop run (and the first polls start) between.
SLICE = 200


class PollingJobs:
    """Runs `poll(tracking_id)` every `interval` seconds for each tracking, until removed.

    The jobs live in APScheduler's in-memory store: the trackings table is the durable truth, and
    the jobs are rebuilt from it at start.
    """

    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        interval: float,
        poll: Callable[[str], Awaitable[None]],
    ) -> None:
        self._scheduler = scheduler
        self._interval = interval
        self._poll = poll

    def add(self, tracking_id: str, after: float) -> None:
        """Poll the tracking `after` seconds from now (a little jitter added), then every interval.

        An existing job of the tracking is replaced.
        """
        jitter = random.uniform(0, 0.1)  # noqa: S311  # jobs asked for together spread out
        self._add(tracking_id, datetime.now(UTC) + timedelta(seconds=after + jitter))

    async def add_spread(self, tracking_ids: Sequence[str]) -> None:
        """Add a job for each tracking, their first polls spread evenly over one interval.

        A restart is then not a burst of calls; the loop runs between slices, so polls start on
        time while the rest is added.
        """
        start = datetime.now(UTC)
        step = self._interval / max(1, len(tracking_ids))
        async for index, tracking_id in in_slices(tracking_ids):
            self._add(tracking_id, start + timedelta(seconds=step * index))

    def delay(self, tracking_id: str, seconds: float) -> None:
        """Move the tracking's next poll to `seconds` from now."""
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job(
                _job_id(tracking_id), next_run_time=datetime.now(UTC) + timedelta(seconds=seconds)
            )

    def remove(self, tracking_id: str) -> None:
        """Stop polling the tracking."""
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(_job_id(tracking_id))

    def __contains__(self, tracking_id: str) -> bool:
        return self._scheduler.get_job(_job_id(tracking_id)) is not None

    def _add(self, tracking_id: str, at: datetime) -> None:
        self._scheduler.add_job(
            self._poll,
            IntervalTrigger(seconds=self._interval),
            args=[tracking_id],
            id=_job_id(tracking_id),
            name=f"follow {tracking_id}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, round(self._interval)),
            next_run_time=at,
        )


async def in_slices(items: Sequence[T]) -> AsyncIterator[tuple[int, T]]:
    """Enumerate `items`, letting the loop run between slices: thousands take a while."""
    for index, item in enumerate(items):
        yield index, item
        if index % SLICE == SLICE - 1:
            await asyncio.sleep(0)


def is_polling_job(job_id: str) -> bool:
    """Whether a scheduler job is one of these polling jobs."""
    return job_id.startswith(_JOB_PREFIX)


_JOB_PREFIX = "tracking:"


class Underway:
    """Counts work under way (polls, edits, listeners posting), so shutdown can wait for it."""

    def __init__(self) -> None:
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """Mark work under way for as long as the block runs."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for every piece of work to end; whether they all did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
        return self._idle.is_set()


class Background:
    """Work a listener starts after Slack has its answer, awaited (for a while) at shutdown."""

    def __init__(self, what: str) -> None:
        self._what = what  # what the work is, for the log when it fails
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None]) -> None:
        """Run `work` on its own; a failure is logged with its traceback."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("%s failed", self._what)

        task = asyncio.create_task(run(), name=self._what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, seconds: float) -> None:
        """Wait for the work under way (up to `seconds`), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)


def _job_id(tracking_id: str) -> str:
    return f"{_JOB_PREFIX}{tracking_id}"
