"""Spending Rhombus calls wisely: batched refreshes, a call budget, slower polls when stalled."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.feed import ClipFeed
from bot.rhombus import RhombusClient, UnavailableError
from standins.rhombus import Fault, ManualClock, stays
from tests.helpers import CLIP, RHOMBUS_KEY, clip_command, status_messages

ONE = "/api/event/getClipWithProgress"
PAGES = "/api/event/getClipsWithProgress"


def _add_live_clips(rhombus, count: int) -> list[str]:
    return [
        rhombus.add_clip(
            f"Live{n:05d}{'x' * 13}", script=stays("UPLOADING", "Uploading video", n % 100)
        )
        for n in range(count)
    ]


def _following(client: RhombusClient, ids: list[str], **options: Any) -> ClipFeed:
    """A feed following `ids` (their creation times unknown)."""
    feed = ClipFeed(client, **options)
    for clip_id in ids:
        feed.follow(clip_id, None)
    return feed


async def test_a_round_over_450_live_clips_costs_three_calls(rhombus):
    """Every job of a round asks for its clip; Rhombus sees three page calls, not 450."""
    ids = _add_live_clips(rhombus, 450)
    rhombus.add_clip("NotFollowed0123456789a")
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = ClipFeed(client, max_age=60)
        for clip_id in ids:
            feed.follow(clip_id, rhombus.clip_json(clip_id)["createdAtMs"])

        clips = await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))

    assert ids == [clip.uuid for clip in clips]
    assert {PAGES: 3} == {path: n for path, n in rhombus.calls.items() if path in {ONE, PAGES}}


async def test_clips_the_pages_miss_fall_back_to_their_own_call(rhombus):
    """Followed clips further back than a refresh reads are fetched one by one."""
    ids = _add_live_clips(rhombus, 250)
    for n in range(800):  # newer clips nobody follows fill the pages a refresh may read
        rhombus.add_clip(f"Other{n:05d}{'y' * 12}", script=stays("UPLOADING", "Uploading", 5))
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=60, min_pages=1)

        clips = await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))

    assert set(ids) == {clip.uuid for clip in clips}
    assert 4 == feed.max_pages == rhombus.calls[PAGES]  # twice the two pages 250 clips fill
    assert 250 == rhombus.calls[ONE]


async def test_a_refresh_reads_as_many_pages_as_the_followed_clips_need(rhombus):
    """1,200 followed clips among others: six pages of them, and no clip asked for alone."""
    ids = []
    for n in range(1200):
        ids.append(
            rhombus.add_clip(f"Live{n:05d}{'x' * 13}", script=stays("UPLOADING", "Up", n % 100))
        )
        if n % 3 == 0:
            rhombus.add_clip(f"Other{n:05d}{'y' * 12}", script=stays("UPLOADING", "Up", 5))
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=60, min_pages=1)

        await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))

    assert 8 == rhombus.calls[PAGES]  # 1,600 clips on 200-clip pages
    assert 0 == rhombus.calls[ONE]


async def test_a_clip_followed_during_a_refresh_is_found_by_the_next_one(rhombus):
    """A clip followed after a refresh began waits for the next one, not a call of its own."""
    late = rhombus.add_clip("LateClip0123456789abcd", script=stays("UPLOADING", "Up", 50))
    for n in range(200):  # between it and the others: the first page ends before it
        rhombus.add_clip(f"Other{n:05d}{'y' * 12}", script=stays("UPLOADING", "Up", 5))
    ids = _add_live_clips(rhombus, 10)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = ClipFeed(client, max_age=60)
        for clip_id in ids:
            feed.follow(clip_id, rhombus.clip_json(clip_id)["createdAtMs"])
        rhombus.inject(Fault("slow", path=PAGES, delay=0.5))
        first = asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))
        await asyncio.sleep(0.1)  # the first refresh is under way
        feed.follow(late, rhombus.clip_json(late)["createdAtMs"])

        clip = await feed.recent(late)
        await first

    assert late == clip.uuid
    assert 0 == rhombus.calls[ONE]
    assert 3 == rhombus.calls[PAGES]  # one page for the ten, then two to reach it


async def test_an_old_answer_is_given_at_once_while_a_refresh_runs(rhombus):
    """Past max_age a poll gets the last refresh's answer without waiting for the next."""
    clock = ManualClock()
    ids = _add_live_clips(rhombus, 10)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=5, clock=clock)
        await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))
        rhombus.set_clip(ids[0], percentComplete=99)
        rhombus.inject(Fault("slow", path=PAGES, delay=30.0))
        clock.advance(6)

        old = await asyncio.wait_for(feed.recent(ids[0]), 10)

        assert 0 == old.percent  # what the first refresh saw, while the second one waits
        for _ in range(200):  # the second refresh reaches Rhombus, and is held there
            if rhombus.calls[PAGES] == 2:
                break
            await asyncio.sleep(0.01)
        assert 2 == rhombus.calls[PAGES]
        rhombus.clear_faults()


async def test_a_failed_refresh_is_reported_not_hidden_behind_old_answers(rhombus):
    """Once a refresh fails, polls get the error of the next one; `error: true` is no verdict."""
    clock = ManualClock()
    ids = _add_live_clips(rhombus, 10)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=5, clock=clock)
        await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))
        rhombus.inject(Fault("error_body", path=PAGES, times=2))
        clock.advance(6)
        await feed.recent(ids[0])  # served from before; starts the refresh that fails
        await asyncio.sleep(0.2)

        with pytest.raises(UnavailableError, match="refused a page"):
            await feed.recent(ids[1])
        clock.advance(6)
        clip = await feed.recent(ids[2])  # the next refresh succeeds

    assert ids[2] == clip.uuid
    assert 0 == rhombus.calls[ONE]


async def test_few_clips_are_asked_one_by_one(rhombus):
    """Below the batching threshold each clip costs one call, and answers are reused for a round."""
    ids = _add_live_clips(rhombus, 3)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=60)

        for _ in range(2):
            await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))

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


@pytest.mark.slow
async def test_a_stalled_clip_is_polled_less_and_less(bot, slack, rhombus):
    """A clip that does not move is polled ever less often (0.1 s, then 1.5 times longer each)."""
    rhombus.add_clip(CLIP, script=stays("OFFLINE", "Waiting for camera", 40))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    polls_at_start = rhombus.calls[ONE]

    await asyncio.sleep(2.0)  # a window to count polls in, not a wait for an event

    # Without pacing, 2 s at 0.1 s would be about 20 polls; with it, about 6.
    assert 3 <= rhombus.calls[ONE] - polls_at_start <= 9


async def test_asking_for_the_latest_bypasses_the_pages(rhombus):
    """Someone pressing Refresh gets Rhombus's answer now, not the last page's."""
    ids = _add_live_clips(rhombus, 10)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=60)
        await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids))
        rhombus.set_clip(ids[0], percentComplete=77)

        cached = await feed.recent(ids[0])
        latest = await feed.fresh(ids[0])
        after = await feed.recent(ids[0])

    assert (0, 77, 77) == (cached.percent, latest.percent, after.percent)
    assert (1, 1) == (rhombus.calls[PAGES], rhombus.calls[ONE])


async def test_a_poll_does_not_wait_for_the_pages_that_bring_its_first_answer(rhombus):
    """Before the first refresh, a polling job gets None at once; afterwards, the page's answer."""
    ids = _add_live_clips(rhombus, 10)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids, max_age=60)
        rhombus.inject(Fault("slow", path=PAGES, delay=0.3))

        first = [await feed.poll(clip_id) for clip_id in ids]
        await feed.recent(ids[0])  # waits for the refresh the polls started
        second = [await feed.poll(clip_id) for clip_id in ids]

    assert [None] * 10 == first
    assert ids == [clip.uuid for clip in second if clip is not None]
    assert (1, 0) == (rhombus.calls[PAGES], rhombus.calls[ONE])


async def test_a_refresh_tells_once_which_followed_clips_it_found_ended(rhombus):
    """Clips a page shows final for the first time are reported, so their polls need not wait."""
    clock = ManualClock()
    ids = _add_live_clips(rhombus, 11)
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        feed = _following(client, ids[:9], max_age=5, clock=clock)
        told: list[set[str]] = []
        feed.on_final = told.append
        await asyncio.gather(*(feed.recent(clip_id) for clip_id in ids[:9]))
        rhombus.set_clip(ids[0], status="COMPLETE", percentComplete=100)
        rhombus.set_clip(ids[1], status="FAILED")
        for late in ids[9:]:
            clock.advance(6)
            await feed.recent(ids[2])  # starts a refresh
            feed.follow(late, None)
            await feed.recent(late)  # waits for a refresh that looked for it

    assert [{ids[0], ids[1]}] == told
