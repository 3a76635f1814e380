"""Signed `/clip` commands sent in bursts from a process of their own, each one timed.

The sender runs apart from the simulators (whose work would otherwise delay reading the
answers, and be counted as the bot's) and from the bot. `CommandSender.start(url, slack_url)`
runs `python -m bench.load CONFIG`; each `burst(texts, channels)` sends one command per text, all
at once, and returns when each was answered (`time.monotonic()`, one clock for every process)
and after how long. The client is aiohttp's: with fifty requests in flight, httpx's connection
pool alone adds a few hundred milliseconds to each.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from bench.bot_process import PROJECT_ROOT
from bench.stage import SIGNING_SECRET, TEAM_ID
from standins.slack_requests import Origin, signature_headers, slash_command

if TYPE_CHECKING:
    from collections.abc import Sequence

READY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Sent:
    """One command: when it was sent, how long until it was answered, and the HTTP status."""

    text: str
    at: float
    seconds: float
    status: int


class CommandSender:
    """The sending process, from the benchmark's side."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, events_url: str, slack_url: str) -> Self:
        """Start a sender posting to the bot's `events_url`, with response_urls on `slack_url`."""
        config = {"events_url": events_url, "slack_url": slack_url}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
        )
        sender = cls(process)
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await sender._read()
        return sender

    async def burst(self, texts: Sequence[str], channel_ids: Sequence[str]) -> list[Sent]:
        """Send `/clip text` for every text at once (in the channels, in turn); the results."""
        answer = await self._ask({"texts": list(texts), "channels": list(channel_ids)})
        return [Sent(**sent) for sent in answer["sent"]]

    async def stop(self) -> None:
        """End the sending process."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        await self._process.wait()

    async def _ask(self, request: dict[str, object]) -> dict[str, Any]:
        if self._process.stdin is None:
            raise RuntimeError("the sender has no stdin")
        self._process.stdin.write(json.dumps(request).encode() + b"\n")
        await self._process.stdin.drain()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        if self._process.stdout is None:
            raise RuntimeError("the sender has no stdout")
        line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the sender ended (exit status {await self._process.wait()})")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise TypeError(f"the sender answered {line!r}")
        return answer


async def _send_all(
    session: aiohttp.ClientSession, config: dict[str, str], request: dict[str, list[str]]
) -> list[Sent]:
    channel_ids = request["channels"]

    async def send(index: int, text: str) -> Sent:
        command = slash_command(
            text,
            response_url=f"{config['slack_url']}/response/{secrets.token_hex(8)}",
            origin=Origin(channel_id=channel_ids[index % len(channel_ids)], team_id=TEAM_ID),
        )
        headers = {
            "Content-Type": command.content_type,
            **signature_headers(command.body, SIGNING_SECRET),
        }
        at = time.monotonic()
        async with session.post(config["events_url"], data=command.body, headers=headers) as sent:
            await sent.read()
        return Sent(text, at, time.monotonic() - at, sent.status)

    return list(await asyncio.gather(*(send(n, text) for n, text in enumerate(request["texts"]))))


async def _serve(config: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    requests = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(requests), sys.stdin)
    connector = aiohttp.TCPConnector(limit=0)  # as many connections as commands in flight
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30.0)
    ) as session:
        _say({"ready": True})
        while line := await requests.readline():
            sent = await _send_all(session, config, json.loads(line))
            _say({"sent": [asdict(one) for one in sent]})


def _say(answer: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Send bursts of commands as asked on stdin, until stdin closes."""
    arguments = sys.argv[1:] if argv is None else argv
    asyncio.run(_serve(json.loads(arguments[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
