"""Real `python -m bot` processes for tests: started on free ports, watched, killed at the end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from standins.slack import SlackSimulator

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
