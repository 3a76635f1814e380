"""Rate budgets: the token bucket and the per-workspace edit queue."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.budget import EditQueue, Priority, TokenBucket
from standins.rhombus import ManualClock
from tests.helpers import wait_until


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


async def test_bucket_serves_lookups_then_pages_then_polls_in_arrival_order():
    """Waiting calls are served lowest priority value first, and in arrival order within one."""
    bucket = TokenBucket(rate=50.0, burst=1)
    bucket.pause(0.3)  # hold every token until all calls are waiting
    served: list[str] = []

    async def call(label: str, priority: Priority) -> None:
        await bucket.take(priority)
        served.append(label)

    arrivals = [
        ("poll 1", Priority.POLL),
        ("poll 2", Priority.POLL),
        ("poll 3", Priority.POLL),
        ("page", Priority.PAGE),
        ("lookup", Priority.LOOKUP),
    ]
    await asyncio.gather(*(call(label, priority) for label, priority in arrivals))

    assert ["lookup", "page", "poll 1", "poll 2", "poll 3"] == served


async def test_a_cancelled_call_neither_spends_a_token_nor_holds_up_the_others():
    """A call cancelled while waiting, or just as it was handed a token, passes its turn on."""
    bucket = TokenBucket(rate=0.001, burst=1)  # no refill during the test: refunds are the tokens
    assert bucket.try_take()
    served: list[str] = []

    async def call(label: str) -> None:
        await bucket.take(Priority.POLL)
        served.append(label)

    calls = {label: asyncio.create_task(call(label)) for label in ("a", "b", "c", "d")}
    await wait_until(lambda: bucket.waiting == 4)
    calls["a"].cancel()  # while waiting
    bucket.refund()  # a's turn is skipped: the token goes to b
    calls["b"].cancel()  # handed the token, cancelled before it could use it
    await wait_until(lambda: served == ["c"])
    bucket.refund()
    await wait_until(lambda: served == ["c", "d"])
    bucket.refund()  # nobody waits: the token stays in the bucket
    results = await asyncio.gather(*calls.values(), return_exceptions=True)

    assert [True, True, False, False] == [
        isinstance(result, asyncio.CancelledError) for result in results
    ]
    assert (0, True) == (bucket.waiting, bucket.try_take())


async def test_bucket_pause_holds_waiting_calls_of_every_priority():
    """A pause that comes while calls wait holds all of them, lookups too, until it passes."""
    bucket = TokenBucket(rate=5.0, burst=1)
    assert bucket.try_take()
    served: list[float] = []

    async def call(priority: Priority) -> None:
        await bucket.take(priority)
        served.append(time.monotonic())

    calls = [asyncio.create_task(call(priority)) for priority in Priority]
    await wait_until(lambda: bucket.waiting == len(Priority))
    bucket.pause(0.3)
    paused_at = time.monotonic()
    await asyncio.gather(*calls)

    assert len(Priority) == len(served)
    assert all(at - paused_at >= 0.3 for at in served)


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


@pytest.mark.slow
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
