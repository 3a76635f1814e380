"""Faults injected through the Slack and Rhombus stand-ins while a clip is followed end to end."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from bot.runtime import Bot
from bot.store import TrackingState
from standins.rhombus import GET_CLIP_PATH, Fault, ManualClock, Step, completes, stays
from tests.helpers import (
    clip_command,
    finished,
    shown_text,
    status_messages,
    stored,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from bot.config import Settings
    from standins.rhombus import Exchange, RhombusSimulator
    from standins.slack import Call, Message, SlackSimulator

CLIP = "LobbyClip0123456789abc"
OTHER = "DockClip_0123456789xyz"
WITNESS = "YardClip_0123456789wit"
CHANNEL = "C0GENERAL"
UNREACHABLE = "Rhombus unreachable, retrying"
UPLOADING: dict[str, object] = {
    "status": "UPLOADING",
    "currentOperation": "Uploading video",
    "percentComplete": 20,
}
# A witness clip that gains 1 % per 100 s of the simulator's clock, so it is never stalled.
CREEPING = (
    Step(0, "UPLOADING", "Uploading video", 0, 100),
    Step(10_000, "COMPLETE", "Complete", 100),
)
COMPLETE: dict[str, object] = {
    "status": "COMPLETE",
    "currentOperation": "Complete",
    "percentComplete": 100,
}


class TimedExchanges(list["Exchange"]):
    """The simulator's exchange log, also noting when (time.monotonic()) each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def append(self, exchange: Exchange) -> None:
        """Record the exchange and the real time it arrived."""
        self.arrived.append(time.monotonic())
        super().append(exchange)


@contextlib.asynccontextmanager
async def running_bot(
    make_settings: Callable[..., Settings], **overrides: object
) -> AsyncIterator[Bot]:
    """The real bot with some settings changed, stopped on the way out."""
    bot = await Bot.start(make_settings(**overrides))
    try:
        yield bot
    finally:
        await bot.stop()


def polls_of(rhombus: RhombusSimulator, clip_id: str) -> int:
    """How many getClipWithProgress requests about one clip reached the simulator."""
    return sum(
        1
        for exchange in rhombus.exchanges
        if exchange.path == GET_CLIP_PATH
        and isinstance(exchange.json, dict)
        and exchange.json.get("clipUuid") == clip_id
    )


async def witness_polled(rhombus: RhombusSimulator, times: int) -> None:
    """Move the witness clip on and wait until Rhombus was asked about it `times` more times."""
    clock = rhombus.clock
    assert isinstance(clock, ManualClock)
    for _ in range(times):
        asked = polls_of(rhombus, WITNESS)
        clock.advance(100)
        await wait_until(lambda asked=asked: polls_of(rhombus, WITNESS) > asked)


def titled(slack: SlackSimulator, title: str) -> Message:
    """The one status message whose header is `title`."""
    (message,) = [m for m in status_messages(slack) if m.blocks[0]["text"]["text"] == title]
    return message


def updates_of(slack: SlackSimulator, message: Message) -> list[Call]:
    """Every chat.update call about one message, answered or refused."""
    return [call for call in slack.calls_to("chat.update") if call.args.get("ts") == message.ts]


def replies_to(slack: SlackSimulator, message: Message) -> list[Call]:
    """Every chat.postMessage call in a status message's thread, answered or refused."""
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == message.ts]


def refused_showing(text: str) -> Callable[[Call], bool]:
    """Whether a call is a refused edit that carried `text`."""

    def check(call: Call) -> bool:
        return not call.ok and text in str(call.args.get("text"))

    return check


def answered_uploading(clip_id: str) -> Callable[[Exchange], bool]:
    """Whether an exchange is Rhombus answering that the clip is uploading."""

    def check(exchange: Exchange) -> bool:
        answer = exchange.response_json if isinstance(exchange.response_json, dict) else {}
        clip = answer.get("clip") or {}
        return clip.get("uuid") == clip_id and clip.get("status") == "UPLOADING"

    return check


def about(records: list[logging.LogRecord], tracking_id: str, level: int) -> list[str]:
    """The messages of the log records at `level` about one tracking."""
    return [
        r.getMessage()
        for r in records
        if r.levelno == level and getattr(r, "tracking", None) == tracking_id
    ]


async def follow(bot: Bot, slack: SlackSimulator, *clip_ids: str, **origin: str) -> None:
    """Type `/clip` for the clips and wait until each has its status message."""
    before = len(status_messages(slack))
    await clip_command(bot, slack, " ".join(clip_ids), **origin)
    await slack.wait_for(lambda s: len(status_messages(s)) == before + len(clip_ids))


async def recovers_to_ready(bot: Bot, slack: SlackSimulator, message: Message) -> None:
    """Wait for the clip's end to be shown and announced once, and for following to stop."""
    await slack.wait_for(lambda s: len(s.thread_replies(CHANNEL, message.ts)) == 1, timeout=10)
    tracking = await finished(bot, message)
    assert "Ready" in message.text
    assert "unreachable" not in shown_text(message)
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))
    assert "<@U0ALICE>" in slack.thread_replies(CHANNEL, message.ts)[0].text
    assert not bot.tracker.is_following(tracking.id)


# --- Rhombus misbehaving while a clip is followed ----------------------------------------------


async def test_rhombus_rate_limit_pauses_every_call_for_retry_after(
    make_settings, slack, rhombus, clock
):
    """A 429 pauses all calls to the org for Retry-After; both clips say so, then reach Ready."""
    rhombus.exchanges = TimedExchanges()
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    rhombus.add_clip(OTHER, title="Loading dock", script=completes(10))
    async with running_bot(make_settings, slack_edits_per_minute=600) as bot:
        await follow(bot, slack, CLIP, OTHER)
        first, second = titled(slack, "Lobby door"), titled(slack, "Loading dock")
        await stored(bot, first, TrackingState.FOLLOWING)
        await stored(bot, second, TrackingState.FOLLOWING)

        rhombus.inject(Fault(kind="rate_limit", retry_after=1, path=GET_CLIP_PATH))
        await slack.wait_for(
            lambda _: UNREACHABLE in shown_text(first) and UNREACHABLE in shown_text(second)
        )
        clock.advance(35)
        await recovers_to_ready(bot, slack, first)
        await recovers_to_ready(bot, slack, second)

    exchanges = rhombus.exchanges
    (limited,) = [i for i, e in enumerate(exchanges) if e.status == 429]
    limited_at = exchanges.arrived[limited]
    # A request the other clip had already sent when the 429 came back is not a new call.
    later = [at - limited_at for at in exchanges.arrived[limited + 1 :] if at - limited_at > 0.05]
    assert later
    assert [] == [round(gap, 3) for gap in later if gap < 1.0]


TRANSIENT_RHOMBUS_FAULTS = [
    pytest.param(Fault(kind="server_error", status=500, times=-1), {}, id="500"),
    pytest.param(Fault(kind="server_error", status=502, times=-1), {}, id="502"),
    pytest.param(Fault(kind="server_error", status=503, times=-1), {}, id="503"),
    pytest.param(
        Fault(kind="slow", delay=2.0, times=-1), {"rhombus_timeout_seconds": 0.3}, id="slow"
    ),
    pytest.param(Fault(kind="disconnect", times=-1), {}, id="disconnect"),
    pytest.param(Fault(kind="garbage", times=-1), {}, id="garbage"),
    pytest.param(Fault(kind="wrong_shape", times=-1), {}, id="wrong_shape"),
]


@pytest.mark.parametrize(("fault", "settings"), TRANSIENT_RHOMBUS_FAULTS)
async def test_transient_rhombus_fault_is_shown_then_recovers(
    make_settings, slack, rhombus, fault: Fault, settings: dict[str, Any]
):
    """While Rhombus misbehaves the message says it is retrying; once it is fixed, Ready."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    async with running_bot(make_settings, **settings) as bot:
        await follow(bot, slack, CLIP)
        (message,) = status_messages(slack)
        tracking = await stored(bot, message, TrackingState.FOLLOWING)

        rhombus.inject(fault)
        await slack.wait_for(lambda _: UNREACHABLE in shown_text(message))

        assert "Initiating" in message.text
        assert fault.kind in {e.fault for e in rhombus.exchanges}
        assert TrackingState.FOLLOWING == (await stored(bot, message)).state
        assert bot.tracker.is_following(tracking.id)
        assert [] == slack.thread_replies(CHANNEL, message.ts)

        rhombus.clear_faults()
        rhombus.set_clip(CLIP, **COMPLETE)
        await recovers_to_ready(bot, slack, message)


async def test_connection_refused_is_shown_then_recovers(bot, slack, rhombus, clock):
    """Rhombus's server stops (connections refused), restarts on its port, and the clip recovers."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    tracking = await stored(bot, message, TrackingState.FOLLOWING)
    port = urlsplit(rhombus.url).port
    assert port is not None

    await rhombus.stop()
    await slack.wait_for(lambda _: UNREACHABLE in shown_text(message))
    assert bot.tracker.is_following(tracking.id)
    await rhombus.start(port=port)
    clock.advance(35)

    await recovers_to_ready(bot, slack, message)


@pytest.mark.parametrize(
    "lose_clip",
    [
        pytest.param(lambda sim: sim.forget_clip(CLIP), id="forgotten"),
        pytest.param(
            lambda sim: sim.inject(Fault(kind="error_body", error_msg="Clip not found", times=-1)),
            id="error_body",
        ),
    ],
)
async def test_clip_unknown_to_rhombus_mid_follow_ends_following(
    bot, slack, rhombus, lose_clip: Callable[[RhombusSimulator], None]
):
    """`error: true` mid-follow ends the message with Rhombus's reason, without a reply."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)

    lose_clip(rhombus)

    await slack.wait_for(lambda _: "Rhombus no longer finds this clip" in shown_text(message))
    tracking = await finished(bot, message)
    assert "Rhombus no longer finds this clip: Clip not found" in shown_text(message)
    assert "retrying" not in shown_text(message)
    assert '"clip_stop"' not in shown_text(message)
    assert not bot.tracker.is_following(tracking.id)
    assert [] == slack.thread_replies(CHANNEL, message.ts)
    assert [] == replies_to(slack, message)


async def test_a_passing_error_answer_mid_follow_is_survived(bot, slack, rhombus, clock):
    """One `error: true` answer while following shows as a retry; the clip still ends Ready."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)

    rhombus.inject(Fault(kind="error_body", error_msg="Unable to process the request", times=1))
    await slack.wait_for(lambda _: "Unable to process the request" in shown_text(message))
    clock.advance(35)

    await recovers_to_ready(bot, slack, message)
    assert "no longer finds" not in shown_text(message)


async def test_fields_turning_null_still_render_and_following_continues(
    bot, slack, rhombus, caplog
):
    """Title, percentage, operation and cameras turning null: the message still renders."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 30))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    tracking = await stored(bot, message, TrackingState.FOLLOWING)
    assert "30%" in message.text

    rhombus.set_clip(
        CLIP, title=None, percentComplete=None, currentOperation=None, deviceUuids=None
    )

    await slack.wait_for(lambda _: CLIP == message.blocks[0]["text"]["text"])
    assert "Uploading" in message.text
    assert "%" not in message.text
    assert "None" not in shown_text(message)
    assert "null" not in shown_text(message)
    assert "📷" not in shown_text(message)
    assert TrackingState.FOLLOWING == (await stored(bot, message)).state
    assert bot.tracker.is_following(tracking.id)
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]

    rhombus.set_clip(CLIP, status="COMPLETE")
    await recovers_to_ready(bot, slack, message)


async def test_rhombus_unreachable_past_give_up_time_ends_following(make_settings, slack, rhombus):
    """Rhombus down longer than the give-up time: a final "could not be reached", no reply."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    async with running_bot(make_settings, give_up_minutes=0.01) as bot:
        await follow(bot, slack, CLIP)
        (message,) = status_messages(slack)
        rhombus.inject(Fault(kind="server_error", status=503, times=-1))

        await slack.wait_for(lambda _: "Rhombus could not be reached" in message.text)
        tracking = await finished(bot, message)

        assert "Stopped following: Rhombus could not be reached" in shown_text(message)
        assert "retrying" not in shown_text(message)
        assert '"clip_stop"' not in shown_text(message)
        assert not bot.tracker.is_following(tracking.id)
        assert [] == slack.thread_replies(CHANNEL, message.ts)


# --- Slack misbehaving while a clip is followed -------------------------------------------------


TRANSIENT_SLACK_FAILURES = [
    pytest.param({"error": "fatal_error"}, id="fatal_error"),
    pytest.param({"error": "internal_error"}, id="internal_error"),
    pytest.param({"error": "service_unavailable"}, id="service_unavailable"),
    pytest.param({"error": "request_timeout"}, id="request_timeout"),
    pytest.param({"status": 500}, id="http_500_html"),
]


@pytest.mark.slow
@pytest.mark.parametrize("failure", TRANSIENT_SLACK_FAILURES)
async def test_transient_slack_failure_never_drops_the_final_state(
    make_settings, slack, rhombus, clock, failure: dict[str, Any]
):
    """The final edit refused for a while: once Slack is back it shows, announced once."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    async with running_bot(make_settings, slack_edits_per_minute=600) as bot:
        await follow(bot, slack, CLIP)
        (message,) = status_messages(slack)
        await stored(bot, message, TrackingState.FOLLOWING)
        slack.fail("chat.update", times=-1, **failure)

        clock.advance(35)
        await slack.wait_for(lambda s: any(map(refused_showing("Ready"), updates_of(s, message))))

        assert "Initiating" in message.text
        assert [] == slack.thread_replies(CHANNEL, message.ts)
        assert TrackingState.FOLLOWING == (await stored(bot, message)).state
        refused = [c for c in updates_of(slack, message) if not c.ok]
        assert {failure.get("status", 200)} == {c.status for c in refused}
        assert {failure.get("error")} == {c.error for c in refused}

        slack.clear_failures()
        await recovers_to_ready(bot, slack, message)
        assert 1 == len(replies_to(slack, message))


MESSAGE_GONE_ERRORS = [
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "is_inactive",
    "channel_not_found",
]


@pytest.mark.parametrize("error", MESSAGE_GONE_ERRORS)
async def test_message_gone_stops_only_that_tracking(bot, slack, rhombus, caplog, error):
    """An edit refused because the message is gone ends that tracking, warns once, and no more."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("INITIATING", "Initiating", 0))
    rhombus.add_clip(WITNESS, title="Yard", script=CREEPING)
    await follow(bot, slack, CLIP, WITNESS)
    gone, witness = titled(slack, "Lobby door"), titled(slack, "Yard")
    tracking = await stored(bot, gone, TrackingState.FOLLOWING)
    witness_tracking = await stored(bot, witness, TrackingState.FOLLOWING)
    slack.fail("chat.update", error=error, ts=gone.ts, times=-1)

    rhombus.set_clip(CLIP, **UPLOADING)
    await finished(bot, gone)
    polls = polls_of(rhombus, CLIP)
    await witness_polled(rhombus, 5)

    assert [error] == [call.error for call in updates_of(slack, gone)]
    assert polls == polls_of(rhombus, CLIP)
    assert TrackingState.FINISHED == (await stored(bot, gone)).state
    assert not bot.tracker.is_following(tracking.id)
    assert 1 == len(about(caplog.records, tracking.id, logging.WARNING))
    assert error in about(caplog.records, tracking.id, logging.WARNING)[0]
    assert [] == slack.thread_replies(CHANNEL, gone.ts)
    assert [] == slack.ephemerals
    assert TrackingState.FOLLOWING == (await stored(bot, witness)).state
    assert bot.tracker.is_following(witness_tracking.id)


@pytest.mark.parametrize("error", ["token_revoked", "account_inactive", "invalid_auth"])
async def test_install_gone_stops_every_tracking_of_the_workspace(
    bot, slack, rhombus, caplog, error
):
    """One edit refused because the install is gone stops both clips of that workspace."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("INITIATING", "Initiating", 0))
    rhombus.add_clip(OTHER, title="Loading dock", script=stays("INITIATING", "Initiating", 0))
    rhombus.add_clip(WITNESS, title="Yard", script=CREEPING)
    await follow(bot, slack, CLIP, OTHER)
    await follow(bot, slack, WITNESS, team_id="T0ELSEWHERE")
    failing, sibling = titled(slack, "Lobby door"), titled(slack, "Loading dock")
    witness = titled(slack, "Yard")
    trackings = [await stored(bot, m, TrackingState.FOLLOWING) for m in (failing, sibling)]
    witness_tracking = await stored(bot, witness, TrackingState.FOLLOWING)
    slack.fail("chat.update", error=error, ts=failing.ts, times=-1)

    rhombus.set_clip(CLIP, **UPLOADING)
    rhombus.set_clip(OTHER, **UPLOADING)
    await finished(bot, failing)
    await finished(bot, sibling)
    # Polls begun before the install went may still wait for a Rhombus call; the budget serves
    # polls in turn, so they are out once the witness was asked about twice more.
    await witness_polled(rhombus, 2)
    polls = polls_of(rhombus, CLIP) + polls_of(rhombus, OTHER)
    await witness_polled(rhombus, 5)

    (refused,) = [c for c in slack.calls_to("chat.update") if c.error == error]
    after = [c for c in slack.calls_to("chat.update") if c.time > refused.time]
    assert [] == [c.args.get("ts") for c in after if c.args.get("ts") in {failing.ts, sibling.ts}]
    assert polls == polls_of(rhombus, CLIP) + polls_of(rhombus, OTHER)
    for message, tracking in zip((failing, sibling), trackings, strict=True):
        assert TrackingState.FINISHED == (await stored(bot, message)).state
        assert not bot.tracker.is_following(tracking.id)
    (logged,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error in logged
    assert TrackingState.FOLLOWING == (await stored(bot, witness)).state
    assert bot.tracker.is_following(witness_tracking.id)


@pytest.mark.slow
async def test_install_gone_during_another_clips_poll_stops_it_too(bot, slack, rhombus, caplog):
    """The install goes while the other clip's poll waits on a slow Rhombus: it stops too."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("INITIATING", "Initiating", 0))
    rhombus.add_clip(OTHER, title="Loading dock", script=stays("INITIATING", "Initiating", 0))
    await follow(bot, slack, CLIP, OTHER)
    failing, sibling = titled(slack, "Lobby door"), titled(slack, "Loading dock")
    sibling_tracking = await stored(bot, sibling, TrackingState.FOLLOWING)
    await stored(bot, failing, TrackingState.FOLLOWING)
    slack.fail("chat.update", error="token_revoked", ts=failing.ts, delay=0.5, times=-1)

    rhombus.set_clip(CLIP, **UPLOADING)
    await wait_until(lambda: any(map(answered_uploading(CLIP), rhombus.exchanges)))
    # From here every poll takes 1.5 s: the other clip's is under way when Slack says
    # token_revoked, 0.5 s after the edit went out.
    rhombus.inject(Fault(kind="slow", delay=1.5, path=GET_CLIP_PATH, times=-1))
    await finished(bot, failing)
    asked = polls_of(rhombus, OTHER)
    await wait_until(lambda: all(e.status is not None for e in rhombus.exchanges))
    await bot.tracker.drain(2)

    assert TrackingState.FINISHED == (await stored(bot, sibling)).state
    assert not bot.tracker.is_following(sibling_tracking.id)
    assert asked == polls_of(rhombus, OTHER)
    assert 1 == len([r for r in caplog.records if r.levelno >= logging.ERROR])


async def test_rate_limited_final_reply_is_delivered_once(bot, slack, rhombus, clock):
    """A 429 on the thread reply announcing the end: the reply still arrives, exactly once."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)
    slack.fail("chat.postMessage", status=429, retry_after=1)

    clock.advance(35)

    tracking = await finished(bot, message)
    assert "Ready" in message.text
    assert [429, 200] == [call.status for call in replies_to(slack, message)]
    (reply,) = slack.thread_replies(CHANNEL, message.ts)
    assert "<@U0ALICE>" in reply.text
    assert tracking.final_reply_sent
    assert not bot.tracker.is_following(tracking.id)


async def test_rate_limited_final_reply_waits_for_retry_after(bot, slack, rhombus, clock):
    """After a 429 on the thread reply, the reply is sent again only once Retry-After passed."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)
    slack.fail("chat.postMessage", status=429, retry_after=1)

    clock.advance(35)

    await finished(bot, message)
    limited, delivered = replies_to(slack, message)
    assert delivered.time - limited.time >= 1.0


async def test_a_status_message_refused_for_a_moment_is_posted_after_it(bot, slack, rhombus):
    """Slack's 429 with a short Retry-After on the status message: the bot waits and posts it."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    slack.fail("chat.postMessage", status=429, retry_after=1)

    await follow(bot, slack, CLIP)

    refused, posted = slack.calls_to("chat.postMessage")
    assert (429, 200) == (refused.status, posted.status)
    assert posted.time - refused.time >= 1.0
    assert [] == slack.ephemerals
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)


async def test_a_status_message_refused_for_long_is_not_left_half_done(bot, slack, rhombus):
    """A long Retry-After: the person is told to try again; nothing is posted or kept."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    slack.fail("chat.postMessage", status=429, retry_after=30)

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert f"try `{CLIP}` again in a minute" in slack.ephemerals[0].text
    assert [] == status_messages(slack)
    assert [] == list(await bot.store.unfinished())


async def test_a_progress_edit_refused_for_a_moment_is_sent_again(bot, slack, rhombus, clock):
    """A progress edit Slack refused once is sent again by a later poll, with nothing new."""
    rhombus.add_clip(
        CLIP,
        script=(
            Step(0, "UPLOADING", "Uploading video", 20),
            Step(10, "UPLOADING", "Uploading video", 50),
        ),
    )
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)
    slack.fail("chat.update", error="internal_error")

    clock.advance(15)  # 50 % from now on, for good

    await slack.wait_for(lambda s: any(map(refused_showing("50%"), updates_of(s, message))))
    await slack.wait_for(lambda _: "50%" in message.text, timeout=10)
    assert [False, True] == [call.ok for call in updates_of(slack, message)]


async def test_slack_unreachable_mid_follow_then_back(bot, slack, rhombus, clock, caplog):
    """Slack down while the clip ends: once it is back, the end shows and is announced once."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    await follow(bot, slack, CLIP)
    (message,) = status_messages(slack)
    tracking = await stored(bot, message, TrackingState.FOLLOWING)
    port = urlsplit(slack.base_url).port
    await slack.stop()

    clock.advance(35)
    await wait_until(
        lambda: any(
            "slack_unreachable" in line
            for line in about(caplog.records, tracking.id, logging.WARNING)
        ),
        seconds=10,
    )
    assert "Initiating" in message.text
    assert TrackingState.FOLLOWING == (await stored(bot, message)).state

    await slack.start(port=port)
    await recovers_to_ready(bot, slack, message)
