"""Hostile input end to end: fuzzed `/clip` text, hostile clip fields, malformed HTTP requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.runtime import Bot
from standins.rhombus import Fault, ManualClock, RhombusSimulator, completes, fails, stays
from standins.slack import SlackSimulator
from standins.slack_requests import post, signature_headers, slash_command
from tests.helpers import (
    APP_TOKEN,
    BOT_TOKEN,
    RHOMBUS_KEY,
    SIGNING_SECRET,
    assert_inert,
    clip_command,
    send,
    status_messages,
    text_objects,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from standins.slack import Ephemeral, Message

CLIP = "LobbyClip0123456789abc"
BROKEN = "DockClip_0123456789xyz"
CAMERA = "HostileCam0123456789ab"
CHANNEL = "C0GENERAL"
REQUESTER = "U0ALICE"
ACK_DEADLINE = 3.0  # Slack shows operation_timeout to whoever typed the command after this
SLACK_TEXT_LIMIT = 4000
MAX_COMMAND_TEXT = 20_000
MAX_REQUEST_BYTES = 1024 * 1024  # what the bot's web server reads at most

HOSTILE = "<!channel> <!here> <@U123> <https://evil|click> *bold* &amp;"
HOSTILE_FIELDS = [
    pytest.param(HOSTILE, id="markup"),
    pytest.param("x" * 10_000, id="10000 chars"),
    pytest.param(((HOSTILE + " ") * 200)[:10_000], id="10000 chars of markup"),
    pytest.param("<" * 10_000, id="10000 brackets"),
]


# --- Fuzzing /clip through the real endpoint --------------------------------------------------

MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U1>",
    "<@U0ALICE|alice>",
    "<#C0GENERAL|general>",
    "<!subteam^S1>",
    "<!date^0^{date}|x>",
    "<https://x|y>",
    "<https://evil.example/a?b=1&c=2|click>",
    "<mailto:a@b.c>",
    "<>",
    "<<!channel>>",
    "*b*",
    "_i_",
    "~s~",
    "`c`",
    "```x```",
    "> quote",
    "&amp;",
    "&lt;",
    "&",
    "<",
    ">",
    ":smile:",
]
LINK_FORMS = [
    "https://console.rhombussystems.com/clips/{}",
    "<https://console.rhombussystems.com/clips/{}|clip>",
    "<https://x.example/watch?clipUuid={}>",
    "https://x.example/?id={}&t=1",
    "({}).",
    "`{}`",
]

unknown_ids = st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True)
clip_links = st.builds(str.format, st.sampled_from(LINK_FORMS), unknown_ids)
controls = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), min_size=1, max_size=8)
words = st.one_of(st.sampled_from(MARKUP), unknown_ids, clip_links, controls, st.text(max_size=40))
separators = st.sampled_from([" ", "  ", "\n", "\t", ",", ";", "", "\u00a0", "\u3000"])
phrases = st.lists(st.tuples(words, separators), max_size=40).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)


def _repeat(piece: str, size: int) -> str:
    return (piece * (size // len(piece) + 1))[:size]


huge = st.builds(
    _repeat, st.one_of(words, phrases).filter(bool), st.integers(1_000, MAX_COMMAND_TEXT)
)
many_references = st.lists(st.one_of(unknown_ids, clip_links), min_size=6, max_size=60).map(
    " ".join
)
command_texts = st.one_of(
    st.sampled_from(["", " ", "\n", "help", "HELP", "?", "--help"]),
    st.text(),
    phrases,
    many_references,
    huge,
    # Bolt takes any body containing "payload" for an interactivity payload: see
    # test_clip_text_containing_payload_is_answered.
).filter(lambda text: "payload" not in text)


@dataclass
class Served:
    """The real bot with both stand-ins, all on one event loop that `runner` drives."""

    runner: asyncio.Runner
    bot: Bot
    slack: SlackSimulator
    client: httpx.AsyncClient

    async def command(self, text: str, response_id: str) -> tuple[int, float]:
        """Type `/clip text`; the HTTP status of the acknowledgement and how long it took."""
        request = slash_command(text, response_url=self.slack.response_url(response_id))
        started = time.monotonic()
        response = await post(
            f"http://127.0.0.1:{self.bot.port}/slack/events",
            request,
            signing_secret=SIGNING_SECRET,
            client=self.client,
        )
        return response.status_code, time.monotonic() - started

    async def answer(self, response_id: str) -> Ephemeral:
        """Wait for the answer sent to one command's response_url."""
        await self.slack.wait_for(lambda s: any(answered(s, response_id)))
        (ephemeral,) = answered(self.slack, response_id)
        return ephemeral


def answered(slack: SlackSimulator, response_id: str) -> list[Ephemeral]:
    """What was posted to one response_url."""
    return [e for e in slack.ephemerals if e.response_url_id == response_id]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """One bot, fake Slack and fake Rhombus (no clips) for a whole hypothesis run."""
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        try:
            rhombus = runner.run(
                stack.enter_async_context(
                    RhombusSimulator(api_key=RHOMBUS_KEY, clock=ManualClock(1_000.0))
                )
            )
            slack = runner.run(
                stack.enter_async_context(SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN))
            )
            client = runner.run(stack.enter_async_context(httpx.AsyncClient(trust_env=False)))
            settings_ = Settings(
                _env_file=None,
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.api_url,
                rhombus_api_key=RHOMBUS_KEY,
                rhombus_api_url=rhombus.url,
                rhombus_media_url=rhombus.url,
                database_url=f"sqlite:///{tmp_path / 'bot.db'}",
                rhombus_calls_per_second=1000,  # unknown ids are looked up: no pacing here
                host="127.0.0.1",
                port=0,
            )
            bot = runner.run(Bot.start(settings_))
            stack.push_async_callback(bot.stop)
            yield Served(runner, bot, slack, client)
        finally:
            runner.run(stack.aclose())


@pytest.mark.slow
def test_fuzzed_clip_commands_are_answered_safely(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Any `/clip` text: 200 within 3 s, one valid and inert answer, nothing posted, no ERROR.

    Hypothesis runs examples synchronously, so the bot is not driven by pytest-asyncio: the
    `served` fixture starts it on an `asyncio.Runner`'s loop, and each example runs its requests
    with `runner.run(...)` on that same loop. Between examples the loop simply waits; nothing
    crosses threads.
    """
    sent: list[str] = []

    @settings(max_examples=100, deadline=None)
    @given(text=command_texts)
    def one_command(text: str) -> None:
        response_id = secrets.token_hex(8)
        sent.append(response_id)
        status, seconds = served.runner.run(served.command(text, response_id))
        assert 200 == status
        assert seconds < ACK_DEADLINE
        answer = served.runner.run(served.answer(response_id))
        assert "ephemeral" == answer.response_type
        assert_safe_answer(answer.text)

    one_command()

    assert [1] * len(sent) == [len(answered(served.slack, r)) for r in sent]
    assert [] == status_messages(served.slack)
    assert [] == [c.method for c in served.slack.calls if c.method.startswith("chat.")]
    assert [] == error_records(caplog)


def assert_safe_answer(text: str) -> None:
    """An ephemeral answer Slack accepts, in which no outside text can ping or link."""
    assert 1 <= len(text) <= SLACK_TEXT_LIMIT
    assert_inert(text, users=())


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every ERROR (or worse) logged so far, from any logger."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- Hostile clip fields ------------------------------------------------------------------------


@pytest.fixture
async def quick_bot(make_settings: Callable[..., Settings]) -> AsyncIterator[Bot]:
    """The real bot, its pacing of Slack edits and Rhombus calls out of these tests' way."""
    running = await Bot.start(
        make_settings(slack_edits_per_minute=600, rhombus_calls_per_second=1000)
    )
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
async def test_hostile_clip_fields_are_valid_and_inert_in_every_revision(
    quick_bot, slack, rhombus, clock, field
):
    """Titles, descriptions, operations and camera names from Rhombus never break or ping."""
    rhombus.add_camera(CAMERA, field)
    rhombus.add_clip(
        CLIP,
        title=field,
        description=field,
        currentOperation=field,
        device_uuids=[CAMERA],
        script=completes(5),
    )
    rhombus.add_clip(
        BROKEN, title=field, description=field, device_uuids=[CAMERA], script=fails(5, field)
    )

    await clip_command(quick_bot, slack, f"{CLIP} {BROKEN}")
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    for label in ("Uploading", "Rendering"):
        clock.advance(5)
        await slack.wait_for(lambda s, x=label: all(x in m.text for m in status_messages(s)))
    clock.advance(5)
    await slack.wait_for(
        lambda s: all(len(s.thread_replies(CHANNEL, m.ts)) == 1 for m in status_messages(s))
    )

    assert [] == [(c.method, c.status, c.error) for c in slack.calls if not c.ok]
    for message in status_messages(slack):
        assert len(message.revisions) >= 4, [r.method for r in message.revisions]
        assert any(field[:20] in text for text in text_objects(message.blocks, "plain_text"))
    for message in bot_messages(slack):
        for revision in message.revisions:
            for text in [revision.text, *text_objects(revision.blocks, "mrkdwn")]:
                assert_inert(text, users={REQUESTER})


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
async def test_restricted_hostile_clip_answer_is_inert(bot, slack, rhombus, field):
    """A clip shown only to the asker, with hostile fields, is told ephemerally and inertly."""
    rhombus.add_clip(
        CLIP, title=field, description=field, visibility="PRIVATE", script=stays("FAILED", field)
    )

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "so I won't post it in the channel" in slack.ephemerals[0].text
    assert_safe_answer(slack.ephemerals[0].text)
    assert [] == status_messages(slack)


@pytest.mark.parametrize(
    "error_msg",
    [
        pytest.param(HOSTILE, id="markup"),
        pytest.param("x" + "&" * 400, id="long with entities"),
        pytest.param("<" * 10_000, id="10000 brackets"),
    ],
)
async def test_rhombus_error_message_is_inert(bot, slack, rhombus, error_msg):
    """Rhombus's errorMsg reaches the asker escaped, and cut without breaking an entity."""
    rhombus.inject(
        Fault(kind="error_body", path="/api/event/getClipWithProgress", error_msg=error_msg)
    )

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert f"Rhombus can't find clip `{CLIP}`" in slack.ephemerals[0].text
    assert_safe_answer(slack.ephemerals[0].text)


def bot_messages(slack: SlackSimulator) -> list[Message]:
    """Every message the bot posted: status messages and thread replies."""
    return [m for m in slack.messages.values() if m.bot_id is not None]


# --- Malformed requests to /slack/events ----------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

MALFORMED = [
    pytest.param(b"", FORM, id="empty"),
    pytest.param(b"\xff\x00not a form\x80", "application/octet-stream", id="binary"),
    pytest.param(b"a=b&&&==&%zz&=", FORM, id="broken form"),
    pytest.param(b"command=%2Fclip&text=help", FORM, id="command without response_url"),
    pytest.param(b"command=%2Fother&text=x", FORM, id="another command"),
    pytest.param(b"payload=%7B%7D", FORM, id="empty payload"),
    pytest.param(b'payload={"type":"block_actions"}', FORM, id="payload without actions"),
    pytest.param(b'{"type": "url_verification", "challenge": "c"}', JSON, id="json challenge"),
    pytest.param(b'{"type": "event_callback", "event": {}}', JSON, id="json event"),
    pytest.param(b"x=" + b"y" * MAX_REQUEST_BYTES, FORM, id="over 1 MB"),
    pytest.param(b"[1, 2]", JSON, id="json list"),
    pytest.param(b'"text"', JSON, id="json string"),
    pytest.param(b"{not json", "text/plain", id="brace garbage"),
    pytest.param(b"payload=not-json", FORM, id="payload not json"),
    pytest.param(b"payload=%5B1%5D", FORM, id="payload list"),
    pytest.param(b"payload=null", FORM, id="payload null"),
    pytest.param(b'{"user": 5, "channel": []}', JSON, id="json of odd shape"),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
async def test_malformed_requests_never_get_a_5xx(bot, slack, body, content_type):
    """Unsigned: 401 (413 if too big). Signed: 200 or 4xx. Never 5xx; nothing is posted."""
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    signed = signature_headers(body.decode("utf-8", errors="replace"), SIGNING_SECRET)
    async with httpx.AsyncClient(trust_env=False) as client:
        unsigned_response = await client.post(
            url, content=body, headers={"Content-Type": content_type}
        )
        signed_response = await client.post(
            url, content=body, headers={"Content-Type": content_type, **signed}
        )

    assert (413 if len(body) > MAX_REQUEST_BYTES else 401) == unsigned_response.status_code
    assert signed_response.status_code == 200 or 400 <= signed_response.status_code < 500
    await clip_command(bot, slack, "help")  # a real command afterwards is still answered
    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert [] == status_messages(slack)
    assert [] == [c.method for c in slack.calls if c.method.startswith("chat.")]


async def test_clip_text_containing_payload_is_answered(bot, slack, rhombus):
    """A clip link whose path says "payload" is followed like any other link."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))

    response = await send(
        bot,
        slash_command(f"https://files.example/payload/{CLIP}", response_url=slack.response_url()),
    )

    assert 200 == response.status_code
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
