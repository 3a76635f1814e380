"""The per-workspace edit queue: what goes first, and how fast."""

from __future__ import annotations

import itertools
import time

from bot.edits import EditQueue
from tests.test_budget import wait_until


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
