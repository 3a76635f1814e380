"""Rate budgets: the token bucket and the per-workspace edit queue."""

from __future__ import annotations

import asyncio
import itertools
import time

from bot.budget import EditQueue, TokenBucket
from bot.rhombus_sim import ManualClock


def test_bucket_spends_burst_then_refills_at_rate():
    """A bucket gives its burst at once, then one token per 1/rate seconds."""
    clock = ManualClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)

    taken = [bucket.try_take() for _ in range(4)]
    clock.advance(0.5)
    again = bucket.try_take()

    assert [True, True, True, False, True] == [*taken, again]


def test_bucket_pause_holds_everything_until_it_passes():
    """After pause(s) nothing is handed out for s seconds, then tokens accrue from empty."""
    clock = ManualClock()
    bucket = TokenBucket(rate=1.0, burst=5, clock=clock)

    bucket.pause(3)
    during = bucket.try_take()
    clock.advance(3.5)
    half_a_token_later = bucket.try_take()
    clock.advance(0.5)
    one_token_later = bucket.try_take()

    assert [False, False, True] == [during, half_a_token_later, one_token_later]


async def test_queue_sends_finals_first_then_longest_waiting_newest_state_only():
    """Under pressure: final states first, then messages in turn, each with its newest state."""
    queue = EditQueue("T1", per_minute=600)
    queue.pause(0.2)  # hold everything until all edits are queued
    sent: list[str] = []

    def edit(label: str):
        async def send() -> None:
            sent.append(label)

        return send

    for key in ("a", "b", "c"):
        queue.submit(key, edit(f"{key}1"), final=False)
    queue.submit("a", edit("a2"), final=False)
    queue.submit("d", edit("d-final"), final=True)

    await wait_until(lambda: len(sent) == 4)
    await queue.close()

    assert ["d-final", "a2", "b1", "c1"] == sent


async def test_queue_keeps_to_its_budget():
    """Ten edits at 120 a minute: a burst of six, then one every half second."""
    queue = EditQueue("T1", per_minute=120)
    times: list[float] = []

    async def send() -> None:
        times.append(time.monotonic())

    for n in range(10):
        queue.submit(str(n), send, final=False)
    await wait_until(lambda: len(times) == 10, seconds=10)
    await queue.close()

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap < 0.1 for gap in gaps[:5])
    assert all(gap >= 0.45 for gap in gaps[5:])


async def test_queue_pauses_for_retry_after():
    """A send that reports Retry-After stops the workspace's edits for that long."""
    queue = EditQueue("T1", per_minute=6000)
    times: list[float] = []

    async def limited() -> float:
        times.append(time.monotonic())
        return 0.5

    async def send() -> None:
        times.append(time.monotonic())

    queue.submit("a", limited, final=False)
    await wait_until(lambda: len(times) == 1)
    queue.submit("b", send, final=False)
    await wait_until(lambda: len(times) == 2)
    await queue.close()

    assert times[1] - times[0] >= 0.5


async def wait_until(condition, seconds: float = 5.0) -> None:
    """Wait for a condition, checking every few milliseconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)
