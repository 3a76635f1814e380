"""The camera list and the organisation's longest clip, asked of Rhombus once in a few minutes."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from bot.cameras import Camera, cameras_of
from bot.when import DEFAULT_MAX_DURATION_SEC

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.rhombus import RhombusClient

CACHE_SECONDS = 300.0


class Directory:
    """Cached answers for making clips: the cameras (with locations) and the longest clip."""

    def __init__(
        self,
        rhombus: RhombusClient,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rhombus = rhombus
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cameras: list[Camera] = []
        self._cameras_at: float | None = None
        self._max: int | None = None
        self._max_at: float | None = None
        self._lock = asyncio.Lock()

    async def cameras(self) -> list[Camera]:
        """Every camera a clip can be made from; RhombusError when Rhombus cannot say."""
        async with self._lock:
            if self._stale(self._cameras_at):
                states = await self._rhombus.camera_states()
                locations = await self._rhombus.camera_locations()
                self._cameras = cameras_of(states, locations)
                self._cameras_at = self._clock()
            return list(self._cameras)

    async def max_duration(self) -> int:
        """The longest clip in seconds (getMaxSpliceDuration; 3600 when Rhombus gives none)."""
        if self._max is None or self._stale(self._max_at):
            said = await self._rhombus.max_splice_duration()
            self._max = said if said is not None and said > 0 else DEFAULT_MAX_DURATION_SEC
            self._max_at = self._clock()
        return self._max

    def _stale(self, at: float | None) -> bool:
        return at is None or self._clock() - at > self._cache_seconds
