"""Rate budgets: the token bucket."""

from __future__ import annotations

import asyncio
import time

from bot.budget import Priority, TokenBucket
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
