"""The local demo: the real bot against the Rhombus and Slack stand-ins, shown in a terminal."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.config import Settings
from bot.runtime import Bot
from bot.unfurl_view import ACTION_UNFURL_CLIP
from standins.demo_text import blocks_as_text, json_list, plain
from standins.demo_workspaces import run_workspaces_demo
from standins.rhombus import DEMO_CLIPS, LOBBY_CAMERA, RhombusSimulator
from standins.slack import SlackSimulator
from standins.slack_requests import (
    SlackRequest,
    event_callback,
    link_shared,
    post,
    slash_command,
    unfurl_action,
)

if TYPE_CHECKING:
    from standins.slack import Call

_SIGNING_SECRET = secrets.token_hex(16)
_TIMEOUT_SECONDS = 180.0
_MADE_CLIP = 'new "Loading Dock" -5m 1m Forklift at the dock'


async def run_demo(speed: float = 1.0, out: TextIO = sys.stdout) -> int:
    """Follow every demo clip to its end in one workspace, then serve two workspaces."""
    step_seconds = max(0.5, 4.0 / max(speed, 0.01))
    with tempfile.TemporaryDirectory(prefix="rhombus-clip-bot-demo-") as folder:
        rhombus = RhombusSimulator.from_scenario("demo", step_seconds=step_seconds)
        slack = SlackSimulator(bot_token="xoxb-demo-" + secrets.token_hex(8))
        async with rhombus, slack:
            settings = Settings(
                _env_file=None,
                slack_bot_token=slack.bot_token,
                slack_signing_secret=_SIGNING_SECRET,
                slack_api_url=slack.api_url,
                rhombus_api_key=rhombus.api_key,
                rhombus_api_url=rhombus.url,
                rhombus_media_url=rhombus.url,
                database_url=f"sqlite:///{Path(folder) / 'demo.db'}",
                poll_interval_seconds=min(1.0, step_seconds / 4),
                host="127.0.0.1",
                port=0,
            )
            printer = _Printer(out, slack)
            slack.on_call = printer.call
            bot = await Bot.start(settings)
            try:
                out.write(
                    "Rhombus clip bot demo: the real bot, scheduler and database against local\n"
                    f"stand-ins for Slack ({slack.base_url}) and Rhombus ({rhombus.url}).\n\n"
                )
                for clip_id in DEMO_CLIPS:
                    out.write(f"@alice in #general: /clip {clip_id}\n")
                    await _type_command(bot.port, f"{clip_id}", slack.response_url())
                # And one clip made from a camera, as someone in the channel would ask for it.
                out.write(f"@alice in #general: /clip {_MADE_CLIP}\n")
                await _type_command(bot.port, _MADE_CLIP, slack.response_url())
                # Once the status messages are out, ask what the channel follows.
                await _wait_for_posts(slack, len(DEMO_CLIPS) - 1)
                out.write("\n@alice in #general: /clip list\n")
                await _type_command(bot.port, "list", slack.response_url())
                await _follow_camera_moment(bot.port, slack, out)
                finished = await _wait_until_all_finished(bot, slack, printer)
            finally:
                await bot.stop()
            out.write(
                "\nDone: every clip reached its end.\n"
                if finished
                else "\nStopped waiting: some clips did not finish in time.\n"
            )
    served = await run_workspaces_demo(speed, out)
    return 0 if finished and served else 1


async def _type_command(port: int, text: str, response_url: str) -> None:
    """Send `/clip text` to the bot the way Slack does: a signed, form-encoded POST."""
    await _send(port, slash_command(text, response_url=response_url))


async def _follow_camera_moment(port: int, slack: SlackSimulator, out: TextIO) -> None:
    """Paste a camera link, then press **Follow a clip of this** on its unfurl."""
    url = f"https://console.rhombussystems.com/devices/cameras/{LOBBY_CAMERA}/?t="
    url += str((int(time.time()) - 180) * 1000)
    out.write(f"\n@alice in #general: {url}\n")
    message = slack.post_user_message("C0GENERAL", url)
    await _send(port, event_callback(link_shared(message, [url])))
    await slack.wait_for(
        lambda sim: sim.surfaces.unfurl_of("C0GENERAL", message.ts, url) is not None
    )
    unfurl = slack.surfaces.unfurl_of("C0GENERAL", message.ts, url)
    if unfurl is None:
        return
    buttons = [element for block in unfurl.blocks for element in block.get("elements", [])]
    value = next(e["value"] for e in buttons if e.get("action_id") == ACTION_UNFURL_CLIP)
    out.write("\n@alice presses [Follow a clip of this] on the unfurl\n")
    click = unfurl_action(
        ACTION_UNFURL_CLIP, value, unfurl=unfurl, response_url=slack.response_url()
    )
    await _send(port, click)


async def _send(port: int, request: SlackRequest) -> None:
    """Send a request to the bot the way Slack does: signed."""
    await post(f"http://127.0.0.1:{port}/slack/events", request, signing_secret=_SIGNING_SECRET)


async def _wait_for_posts(slack: SlackSimulator, count: int) -> None:
    """Wait (a few seconds at most) until the bot has posted `count` status messages."""
    await slack.wait_for(
        lambda sim: (
            sum(m.bot_id is not None and m.thread_ts is None for m in sim.messages.values())
            >= count
        ),
        timeout=10.0,
    )


async def _wait_until_all_finished(bot: Bot, slack: SlackSimulator, printer: _Printer) -> bool:
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    await asyncio.sleep(1.0)  # let the commands' status messages go out
    while time.monotonic() < deadline:
        printer.ephemerals(slack)
        if not await bot.store.unfinished():
            if bot.deliveries is not None:
                await bot.deliveries.idle()  # the videos and thumbnails
            await bot.tracker.drain(2.0)
            return True
        await asyncio.sleep(0.25)
    return False


class _Printer:
    """Prints each new state of each bot message, readably."""

    def __init__(self, out: TextIO, slack: SlackSimulator) -> None:
        self._out = out
        self._slack = slack
        self._seen_ephemerals = 0
        self._names: dict[str, str] = {}
        self._threaded: set[str] = set()  # thread replies the bot edits (status messages)

    def call(self, call: Call) -> None:
        if call.ok and call.method == "files.completeUploadExternal":
            self._shared(call)
        if call.ok and call.method == "chat.unfurl" and call.args.get("channel"):
            self._unfurled(call)
        if not call.ok or call.method not in {"chat.postMessage", "chat.update"}:
            return
        args = call.args
        answer = call.response or {}
        ts = str(answer.get("ts") or args.get("ts") or "")
        key = f"{args.get('channel')}/{ts}"
        if args.get("thread_ts") or key in self._threaded:
            self._threaded.add(key)
            label = f"thread reply{', edited' if call.method == 'chat.update' else ''}"
        else:
            self._names.setdefault(key, f"message {len(self._names) + 1}")
            label = (
                f"{self._names[key]}, {'posted' if call.method == 'chat.postMessage' else 'edited'}"
            )
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json_list(blocks)
        lines = blocks_as_text(blocks or []) or [plain(str(args.get("text") or ""))]
        self._out.write(f"\n── #general · {label} " + "─" * max(0, 50 - len(label)) + "\n")
        for line in lines:
            self._out.write(f"  {line}\n")
        self._out.flush()

    def _unfurled(self, call: Call) -> None:
        """A link's unfurl, as the bot attached it."""
        unfurls = call.args.get("unfurls")
        if isinstance(unfurls, str):
            unfurls = json.loads(unfurls)
        self._out.write("\n── #general · unfurl " + "─" * 44 + "\n")
        for unfurl in unfurls.values() if isinstance(unfurls, dict) else []:
            for line in blocks_as_text(unfurl.get("blocks") or []):
                self._out.write(f"  {line}\n")
        self._out.flush()

    def _shared(self, call: Call) -> None:
        """A file shared in a thread: the video, with the reply's text as its comment."""
        if not call.args.get("channel_id"):
            return  # a thumbnail, shared nowhere: it shows in the status message
        label = "thread reply"
        self._out.write(f"\n── #general · {label} " + "─" * max(0, 50 - len(label)) + "\n")
        for item in json_list(str(call.args.get("files") or "[]")):
            file = self._slack.files.get(str(item.get("id")))
            if file is not None:
                self._out.write(f"  📎 video {file.filename} ({file.length / 1e6:.1f} MB)\n")
        self._out.write(f"  {plain(str(call.args.get('initial_comment') or ''))}\n")
        self._out.flush()

    def ephemerals(self, slack: SlackSimulator) -> None:
        for ephemeral in slack.ephemerals[self._seen_ephemerals :]:
            self._out.write(f"\n── only visible to @alice ──\n  {plain(ephemeral.text)}\n")
        self._seen_ephemerals = len(slack.ephemerals)
