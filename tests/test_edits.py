"""The per-workspace edit queue: what goes first, and how fast."""

from __future__ import annotations

import asyncio
import math

from bot.edits import RECOVERY_SECONDS, EditPacing, EditQueue
from standins.rhombus import ManualClock
from tests.helpers import wait_until


def send_at_once(pacing: EditPacing, count: int, *, final: bool) -> None:
    """Send `count` edits that are answered at once."""
    for _ in range(count):
        pacing.sending(final=final)
        pacing.answered()


def test_ends_fill_the_rolling_minute_then_wait_for_the_oldest_to_leave():
    """48 ends a minute go at once; the 49th goes when the first leaves the minute."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    waits = []
    for _ in range(48):
        waits.append(pacing.wait(final=True))
        send_at_once(pacing, 1, final=True)
        clock.advance(0.5)

    assert [0.0] * 48 == waits
    assert 60.0 - 24.0 == pacing.wait(final=True)


def test_an_edit_counts_from_when_it_is_sent_until_a_minute_after_its_answer():
    """An edit still on its way holds its slot; once answered, it holds it for a whole minute."""
    clock = ManualClock()
    pacing = EditPacing(1, clock)

    pacing.sending(final=True)
    on_its_way = pacing.wait(final=True)
    clock.advance(2)
    pacing.answered()

    assert (math.inf, 60.0) == (on_its_way, pacing.wait(final=True))


def test_progress_edits_are_spaced_evenly_over_the_minute():
    """A progress edit waits 60/48 s after the last one, even with the minute nearly empty."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    send_at_once(pacing, 1, final=False)
    clock.advance(1.0)

    assert (0.25, 0.0) == (pacing.wait(final=False), pacing.wait(final=True))


def test_progress_edits_leave_a_reserve_of_the_minute_to_ends():
    """With all but the reserve of the minute spent, progress waits and an end still goes."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    send_at_once(pacing, 48 - pacing.reserve, final=True)
    clock.advance(10)

    assert (8, 50.0, 0.0) == (pacing.reserve, pacing.wait(final=False), pacing.wait(final=True))


def test_a_rush_of_ends_keeps_more_of_the_minute_from_progress():
    """Ends arriving faster in the last half minute than in the one before add to the reserve."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    for _ in range(3):
        pacing.end_arrived()
    clock.advance(40)
    for _ in range(10):
        pacing.end_arrived()
    rushing = pacing.reserve
    clock.advance(20)  # the three early ends leave the minute
    more_rushing = pacing.reserve
    clock.advance(20)  # the ten leave the last half minute
    steady = pacing.reserve

    assert (8 + 7, 8 + 10, 8) == (rushing, more_rushing, steady)


def test_a_429_pauses_and_halves_the_rate_which_climbs_back_by_one_every_few_seconds():
    """After a 429: nothing for Retry-After, then 24 a minute, one more every step, up to 48."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    pacing.slow_down(10)
    during = (pacing.paused_for, pacing.limit, pacing.wait(final=True))
    clock.advance(10)
    after_pause = pacing.limit
    clock.advance(RECOVERY_SECONDS)
    one_step = pacing.limit
    clock.advance(RECOVERY_SECONDS * 22)
    almost = pacing.limit
    clock.advance(RECOVERY_SECONDS)
    back = pacing.limit
    clock.advance(RECOVERY_SECONDS * 10)

    assert ((10.0, 24, 10.0), 24, 25, 47, 48, 48) == (
        during,
        after_pause,
        one_step,
        almost,
        back,
        pacing.limit,
    )


def test_an_end_waits_until_the_lowered_rate_climbs_to_room_for_it():
    """30 edits in the minute, then a 429 (24 allowed, one more every 5 s): room at 31, 35 s on."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    send_at_once(pacing, 30, final=True)
    pacing.slow_down(1)
    waits = []
    for seconds in (1, 30, 5):
        clock.advance(seconds)
        # A positive wait is the next moment worth asking again: the limit's next step.
        waits.append((pacing.limit, pacing.wait(final=True)))

    assert [(24, 5.0), (30, 5.0), (31, 0.0)] == waits


def test_429s_within_one_pause_lower_the_rate_once_and_a_later_one_again():
    """Edits sent before the first 429 was answered get theirs too; they lower the rate once."""
    clock = ManualClock()
    pacing = EditPacing(48, clock)

    pacing.slow_down(2)
    pacing.slow_down(2)
    pacing.slow_down(3)
    once = (pacing.limit, pacing.paused_for)
    clock.advance(3 + RECOVERY_SECONDS * 4)  # climbed to 28
    pacing.slow_down(1)

    assert ((24, 3.0), 14) == (once, pacing.limit)


def test_a_workspace_taken_over_waits_then_goes_at_the_steady_rate_not_a_burst():
    """Taken over: nothing for 2 s, then ends one by one as the other's assumed minute leaves."""
    clock = ManualClock()
    queue = EditQueue("T0SIM", 48, clock)

    queue.taken_over(2.0)
    fenced = queue.pacing.wait(final=True)
    clock.advance(2.0)
    waits = []
    for _ in range(4):
        waits.append(queue.pacing.wait(final=True))
        clock.advance(waits[-1])
        send_at_once(queue.pacing, 1, final=True)

    assert 2.0 == fenced
    # The other replica's 48 edits are taken as spread over the minute, one every 1.25 s; two
    # of them left it during the 2 s.
    assert [0.0, 0.5, 1.25, 1.25] == [round(wait, 6) for wait in waits]


def test_a_budget_under_one_a_minute_is_one_edit_per_longer_window():
    """Half an edit a minute: one edit, then the next two minutes later."""
    clock = ManualClock()
    pacing = EditPacing(0.5, clock)

    send_at_once(pacing, 1, final=True)

    assert (1, 120.0) == (pacing.limit, pacing.wait(final=True))


def recorder(sent: list[str]):
    """A factory of edits that note their label when sent."""

    def edit(label: str):
        async def send() -> None:
            sent.append(label)

        return send

    return edit


async def test_queue_sends_ends_in_arrival_order_then_progress_in_turn_newest_state_only():
    """Ends first, in the order they came; then each message's newest progress, oldest first."""
    queue = EditQueue("T1", per_minute=6000)
    sent: list[str] = []
    edit = recorder(sent)

    for key in ("a", "b", "c"):
        queue.submit(key, edit(f"{key}1"), final=False)
    queue.submit("a", edit("a2"), final=False)  # keeps a's turn
    queue.submit("d", edit("d-end"), final=True)
    queue.submit("b", edit("b-end"), final=True)  # its waiting progress is dropped
    queue.submit("d", edit("d-end again"), final=True)  # keeps d's place among ends

    await wait_until(lambda: len(sent) == 4)
    await queue.close()

    assert ["d-end again", "b-end", "a2", "c1"] == sent


async def test_an_end_waits_for_its_messages_edit_on_its_way_and_holds_progress_back():
    """While an end waits for its message's earlier edit to be answered, no progress goes."""
    queue = EditQueue("T1", per_minute=6000)
    sent: list[str] = []
    edit = recorder(sent)
    answer = asyncio.Event()

    async def slow() -> None:
        sent.append("a1")
        await answer.wait()

    queue.submit("a", slow, final=False)
    await wait_until(lambda: sent == ["a1"])
    queue.submit("b", edit("b1"), final=False)
    queue.submit("a", edit("a-end"), final=True)
    held = queue.next_edit()
    answer.set()
    await wait_until(lambda: len(sent) == 3)
    await wait_until(lambda: queue.idle)
    await queue.close()

    assert (None, ["a1", "a-end", "b1"]) == (held, sent)


async def test_queue_sends_several_edits_at_once_so_a_slow_one_holds_none_back():
    """An end whose send is slow (its thread reply) does not keep the next end waiting."""
    queue = EditQueue("T1", per_minute=6000)
    sent: list[str] = []
    edit = recorder(sent)
    answer = asyncio.Event()

    async def slow() -> None:
        sent.append("a-end")
        await answer.wait()

    queue.submit("a", slow, final=True)
    queue.submit("b", edit("b-end"), final=True)
    await wait_until(lambda: len(sent) == 2)
    sending = queue.idle
    answer.set()
    await wait_until(lambda: queue.idle)
    await queue.close()

    assert (["a-end", "b-end"], False) == (sent, sending)


async def test_a_send_that_reports_retry_after_pauses_the_workspace_and_lowers_its_rate():
    """A send returning Retry-After stops the workspace's edits and halves its rate."""
    clock = ManualClock()
    queue = EditQueue("T1", per_minute=48, clock=clock)

    async def limited() -> float:
        return 30.0

    queue.submit("a", limited, final=False)
    await wait_until(lambda: queue.idle)
    await queue.close()

    assert (30.0, 24, 1) == (queue.paused_for, queue.pacing.limit, queue.sent)
