"""Real `python -m bot` processes for tests: started on free ports, watched, killed at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest

from bot.store import Store, TrackingState
from tests.helpers import BOT_TOKEN, RHOMBUS_KEY, SIGNING_SECRET, base_env

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from standins.rhombus import RhombusSimulator
    from standins.slack import Call, Message, SlackSimulator

CHANNEL = "C0GENERAL"
START_TIMEOUT = 10.0
WAIT_TIMEOUT = 10.0


@dataclass
class BotProcess:
    """One `python -m bot` process, its port, and everything it wrote to stderr so far."""

    number: int
    process: asyncio.subprocess.Process
    port: int
    stderr: bytearray = field(default_factory=bytearray)
    drained: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where the process serves."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Its stderr so far, headed by which process it is and how it ended."""
        header = f"--- bot process {self.number} (exit status {self.process.returncode}) ---"
        return f"{header}\n{self.stderr.decode(errors='replace')}"


class BotProcesses:
    """Starts bot processes with one environment, and kills whatever is left at the end."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.started: list[BotProcess] = []

    async def start(self) -> BotProcess:
        """Start `python -m bot` on a free port and wait until /healthz answers 200."""
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env={**self.env, "PORT": str(port)},
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        bot = BotProcess(len(self.started) + 1, process, port)
        # A full stderr pipe would block the bot mid-log; read it as it comes.
        assert process.stderr is not None
        bot.drained = asyncio.create_task(drain(process.stderr, bot.stderr))
        self.started.append(bot)
        await self._wait_healthy(bot)
        return bot

    async def _wait_healthy(self, bot: BotProcess) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while True:
                if bot.process.returncode is not None:
                    raise AssertionError(f"the bot exited before it was ready\n{self.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if 200 == (await client.get(f"{bot.url}/healthz")).status_code:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"/healthz not 200 within {START_TIMEOUT} s\n{self.output()}"
                    )
                await asyncio.sleep(0.05)

    async def wait_for(
        self, slack: SlackSimulator, predicate: Callable[[SlackSimulator], bool]
    ) -> None:
        """Wait for the Slack stand-in to see something; on timeout, show the bots' stderr."""
        try:
            await slack.wait_for(predicate, WAIT_TIMEOUT)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.output()}") from None

    async def exit_status(self, bot: BotProcess, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Wait for a process to exit; its exit status."""
        try:
            return await asyncio.wait_for(bot.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"still running after {timeout} s\n{self.output()}") from None

    def output(self) -> str:
        """Every process's stderr, for failure messages."""
        return "\n".join(bot.output() for bot in self.started)

    async def close(self) -> None:
        """Kill every process still running and collect what it wrote."""
        for bot in self.started:
            if bot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    bot.process.kill()
            await bot.process.wait()
            if bot.drained is not None:
                await bot.drained


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    """Read a pipe to its end."""
    while chunk := await stream.read(65536):
        into.extend(chunk)


# --- Fixtures and helpers of the tests that run the bot as real processes ---------------------


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite file in tmp_path, shared by every bot process of a test."""
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
def bot_env(database_url: str, slack: SlackSimulator, rhombus: RhombusSimulator) -> dict[str, str]:
    """An environment built from scratch: HTTP mode, the stand-ins, fast polling."""
    return {
        **base_env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "RHOMBUS_API_KEY": RHOMBUS_KEY,
        "RHOMBUS_API_URL": rhombus.url,
        "RHOMBUS_MEDIA_URL": rhombus.url,
        "DELIVER_VIDEO": "false",  # the video's own restarts turn it on
        "DELIVER_THUMBNAIL": "false",
        "RHOMBUS_TIMEOUT_SECONDS": "2",
        "DATABASE_URL": database_url,
        "POLL_INTERVAL_SECONDS": "0.2",
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
async def bots(bot_env: dict[str, str], tmp_path: Path) -> AsyncIterator[BotProcesses]:
    """Starts bot processes; kills any still running when the test ends."""
    # The bot reads .env from its working directory: tmp_path has none.
    processes = BotProcesses(bot_env, tmp_path)
    try:
        yield processes
    finally:
        await processes.close()


def kill_when(slack: SlackSimulator, bot: BotProcess, predicate: Callable[[Call], bool]) -> None:
    """SIGKILL the bot the moment Slack has accepted a call, before the bot hears the answer."""

    def on_call(call: Call) -> None:
        if call.ok and predicate(call) and bot.process.returncode is None:
            os.kill(bot.process.pid, signal.SIGKILL)
            slack.on_call = None

    slack.on_call = on_call


def status_messages(slack: SlackSimulator) -> list[Message]:
    """The bot's top-level messages in #general."""
    return [
        m
        for m in slack.messages.values()
        if m.channel == CHANNEL and m.bot_id is not None and m.thread_ts is None
    ]


def shown_text(message: Message) -> str:
    """Everything a person reads in a message: fallback text and every text in its blocks."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


async def finished(database_url: str, message: Message, bots: BotProcesses) -> None:
    """Wait until the database records the message's tracking as finished, its reply sent."""
    store = Store(database_url.replace("sqlite://", "sqlite+aiosqlite://", 1))
    deadline = time.monotonic() + WAIT_TIMEOUT
    try:
        while True:
            tracking = await store.find_by_message(message.channel, message.ts)
            if tracking is not None and tracking.state == TrackingState.FINISHED:
                assert tracking.final_reply_sent, bots.output()
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not finished: {tracking!r}\n{bots.output()}")
            await asyncio.sleep(0.05)
    finally:
        await store.close()
