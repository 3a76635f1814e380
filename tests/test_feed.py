"""Spending Rhombus calls wisely: batched refreshes, a call budget, slower polls when stalled."""

from __future__ import annotations

import asyncio
import time

from bot.feed import ClipFeed
from bot.rhombus import RhombusClient
from bot.rhombus_sim import stays
from tests.conftest import RHOMBUS_KEY
from tests.test_follow import CLIP, clip_command, status_messages

ONE = "/api/event/getClipWithProgress"
PAGES = "/api/event/getClipsWithProgress"


def _add_live_clips(rhombus, count: int) -> list[str]:
    return [
        rhombus.add_clip(
            f"Live{n:05d}{'x' * 13}", script=stays("UPLOADING", "Uploading video", n % 100)
        )
        for n in range(count)
    ]


async def test_a_round_over_450_live_clips_costs_three_calls(rhombus):
    """Every job of a round asks for its clip; Rhombus sees three page calls, not 450."""
    ids = _add_live_clips(rhombus, 450)
    rhombus.add_clip("NotFollowed0123456789a")
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = ClipFeed(client, max_age=60)
        for clip_id in ids:
            feed.follow(clip_id, rhombus.clip_json(clip_id)["createdAtMs"])

        clips = await asyncio.gather(*(feed.get(clip_id) for clip_id in ids))

    assert ids == [clip.uuid for clip in clips]
    assert {PAGES: 3} == {path: n for path, n in rhombus.calls.items() if path in {ONE, PAGES}}


async def test_clips_the_pages_miss_fall_back_to_their_own_call(rhombus):
    """With the page budget spent, the clips not seen are fetched one by one."""
    ids = _add_live_clips(rhombus, 250)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = ClipFeed(client, max_age=60, max_pages=1)
        for clip_id in ids:
            feed.follow(clip_id, None)

        clips = await asyncio.gather(*(feed.get(clip_id) for clip_id in ids))

    assert set(ids) == {clip.uuid for clip in clips}
    assert 1 == rhombus.calls[PAGES]
    assert 50 == rhombus.calls[ONE]


async def test_few_clips_are_asked_one_by_one(rhombus):
    """Below the batching threshold each clip costs one call, and answers are reused for a round."""
    ids = _add_live_clips(rhombus, 3)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = ClipFeed(client, max_age=60)
        for clip_id in ids:
            feed.follow(clip_id, None)

        for _ in range(2):
            await asyncio.gather(*(feed.get(clip_id) for clip_id in ids))

    assert 3 == rhombus.calls[ONE]
    assert 0 == rhombus.calls[PAGES]


async def test_the_call_budget_spaces_calls(rhombus):
    """At 20 calls a second (burst 40), 60 calls take at least one second."""
    clip_id = rhombus.add_clip(CLIP)
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url=rhombus.url, calls_per_second=20
    ) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.get_clip(clip_id) for _ in range(60)))
        elapsed = time.monotonic() - started

    assert elapsed >= 0.95
    assert 60 == rhombus.calls[ONE]


async def test_a_stalled_clip_is_polled_less_and_less(bot, slack, rhombus):
    """A clip that does not move is polled ever less often (0.1 s, then 1.5 times longer each)."""
    rhombus.add_clip(CLIP, script=stays("OFFLINE", "Waiting for camera", 40))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    polls_at_start = rhombus.calls[ONE]

    await asyncio.sleep(2.0)  # a window to count polls in, not a wait for an event

    # Without pacing, 2 s at 0.1 s would be about 20 polls; with it, about 6.
    assert 3 <= rhombus.calls[ONE] - polls_at_start <= 9
