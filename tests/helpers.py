"""What several test modules share: credentials, Slack requests to the bot, waits, text checks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.store import TrackingState
from standins.slack_requests import Origin, SlackRequest, post, slash_command

if TYPE_CHECKING:
    from collections.abc import Collection

    import httpx

    from bot.runtime import Bot
    from bot.store import Tracking
    from standins.slack import Message, SlackSimulator

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-test-app-token-0123456789"
RHOMBUS_KEY = "test-rhombus-api-key-0123456789"

CLIP = "LobbyClip0123456789abc"
OTHER = "DockClip_0123456789xyz"

_REPO = Path(__file__).resolve().parents[1]

# What may appear between < and > in mrkdwn: mentions and date tokens bot.blocks writes.
OWN_ENTITY = re.compile(
    r"<@(?P<user>[A-Z0-9]+)>"
    r"|<!date\^(?P<epoch>\d+)\^\{date_short_pretty\} at \{time\}"
    r"\|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ>"
)
ESCAPE = re.compile(r"&(amp|lt|gt);")


def base_env() -> dict[str, str]:
    """What any process needs to run Python here, and nothing of the bot's own settings."""
    env = {"PYTHONPATH": str(_REPO)}
    env.update({name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ})
    return env


async def send(bot: Bot, request: SlackRequest, **kwargs: object) -> httpx.Response:
    """Post a Slack request to the bot's /slack/events, signed like Slack signs it."""
    return await post(
        f"http://127.0.0.1:{bot.port}/slack/events",
        request,
        signing_secret=SIGNING_SECRET,
        **kwargs,  # type: ignore[arg-type]
    )


async def clip_command(bot: Bot, slack: SlackSimulator, text: str, **origin: str) -> httpx.Response:
    """Type `/clip text` in a channel."""
    request = slash_command(
        text, response_url=slack.response_url(), origin=Origin(**origin) if origin else Origin()
    )
    response = await send(bot, request)
    assert 200 == response.status_code
    return response


def status_messages(slack: SlackSimulator, channel: str = "C0GENERAL") -> list[Message]:
    """The bot's top-level messages in a channel."""
    return [
        m
        for m in slack.messages.values()
        if m.channel == channel and m.bot_id is not None and m.thread_ts is None
    ]


def shown_text(message: Message) -> str:
    """Everything a person reads in a message: fallback text and every text in its blocks."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


async def stored(bot: Bot, message: Message, state: str | None = None) -> Tracking:
    """Wait until the tracking of a status message is stored (in `state`, if given)."""
    deadline = time.monotonic() + 5.0
    while True:
        tracking = await bot.store.find_by_message(message.channel, message.ts)
        if tracking is not None and state in {None, tracking.state}:
            return tracking
        if time.monotonic() > deadline:
            raise TimeoutError(f"tracking of {message.ts} not stored as {state}: {tracking!r}")
        await asyncio.sleep(0.01)


async def finished(bot: Bot, message: Message) -> Tracking:
    """Wait until the tracking of a status message is stored as finished."""
    return await stored(bot, message, TrackingState.FINISHED)


async def wait_until(condition, seconds: float = 5.0) -> None:
    """Wait for a condition on state the stand-ins record, checking every few milliseconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


def text_objects(node: object, kind: str) -> list[str]:
    """Every text of the given type ("mrkdwn", "plain_text", rich text "text") in the blocks."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == kind and isinstance(node.get("text"), str):
            found.append(node["text"])
        for value in node.values():
            found += text_objects(value, kind)
    elif isinstance(node, list):
        for item in node:
            found += text_objects(item, kind)
    return found


def assert_inert(mrkdwn: str, users: Collection[str]) -> None:
    """Only our own mentions and date tokens are live; every other <, > and & is escaped."""
    for match in OWN_ENTITY.finditer(mrkdwn):
        assert match["user"] is None or match["user"] in users, mrkdwn
    rest = ESCAPE.sub("", OWN_ENTITY.sub("", mrkdwn))
    assert "<" not in rest, mrkdwn
    assert ">" not in rest, mrkdwn
    assert "&" not in rest, mrkdwn
