"""How fast `/clip` is acknowledged, with many commands at once and a slow Rhombus.

    python -m bench.ack_latency [--commands 50] [--bursts 10] [--rhombus-delay 2]

The real bot runs in its own process with its default settings, in HTTP mode; the commands come
from a third process (`bench.load`). Each burst is `--commands` signed `/clip` requests sent at
the same moment, each for a different clip: first with Rhombus answering at once, then with
every Rhombus answer held back `--rhombus-delay` seconds (`Fault("slow")`). Reported: the HTTP
response time of the requests, which is what Slack waits for (3 s at most), and how long after
the command its status message was posted, which does wait for Rhombus. Two rows come first,
with the same bursts: an endpoint that answers at once (the floor of the measurement), and a Bolt
app whose listener only acknowledges, served as the bot serves Bolt (what Bolt alone costs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bench.bare_bolt import serving_bare_bolt
from bench.bot_process import BotProcess
from bench.figures import machine, ms, percentile, say, secs, table
from bench.load import CommandSender
from bench.stage import bot_settings, channels
from standins.rhombus import Fault, RhombusSimulator, completes
from standins.slack import SlackSimulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from bench.load import Sent
    from standins.slack import Call

GOAL_P99_SECONDS = 0.050
POSTING_TIMEOUT_SECONDS = 120.0


@dataclass
class Phase:
    """Bursts of commands sent under one condition, and what became of them."""

    label: str
    sent: list[Sent] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        """Seconds until each command was answered."""
        return [one.seconds for one in self.sent]

    @property
    def failures(self) -> int:
        """Commands not answered 200."""
        return sum(one.status != 200 for one in self.sent)

    def row(self, posted_at: dict[str, float] | None) -> list[object]:
        """The phase's line in the table (`posted_at` None: no status messages to look for)."""
        posted = [
            posted_at[one.text] - one.at
            for one in self.sent
            if posted_at is not None and one.text in posted_at
        ]
        return [
            self.label,
            len(self.sent),
            self.failures,
            ms(percentile(self.latencies, 50)),
            ms(percentile(self.latencies, 90)),
            ms(percentile(self.latencies, 99)),
            ms(max(self.latencies, default=float("nan"))),
            "-" if posted_at is None else f"{len(posted)}/{len(self.sent)}",
            secs(percentile(posted, 50)),
            secs(max(posted, default=float("nan"))),
        ]


def posted_at(calls: Sequence[Call]) -> dict[str, float]:
    """When the status message of each clip was posted (found by its message metadata)."""
    posted: dict[str, float] = {}
    for call in calls:
        if call.method != "chat.postMessage" or not call.ok or call.args.get("thread_ts"):
            continue
        metadata = call.args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        clip_id = ((metadata or {}).get("event_payload") or {}).get("clip_id")
        if isinstance(clip_id, str):
            posted.setdefault(clip_id, call.time)
    return posted


@contextlib.asynccontextmanager
async def answering_at_once() -> AsyncIterator[str]:
    """An endpoint on 127.0.0.1 that reads the request and answers 200 at once: the floor."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    application = web.Application()
    application.router.add_post("/slack/events", answer)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


async def bursts(
    sender: CommandSender, phase: Phase | None, texts: Sequence[str], args: argparse.Namespace
) -> None:
    """Send `texts` in bursts of `--commands`, `--pause` seconds apart (`phase` None: unkept)."""
    channel_ids = list(channels(10))
    for start in range(0, len(texts), args.commands):
        sent = await sender.burst(texts[start : start + args.commands], channel_ids)
        if phase is not None:
            phase.sent += sent
        await asyncio.sleep(args.pause)


async def measure_without_bot(
    url: str, label: str, slack: SlackSimulator, args: argparse.Namespace
) -> Phase:
    """The same bursts against something other than the bot, at `url`."""
    phase = Phase(label)
    sender = await CommandSender.start(url, slack.base_url)
    try:
        await bursts(sender, None, ["help"] * args.commands, args)  # warming up
        await bursts(sender, phase, ["help"] * (args.commands * args.bursts), args)
    finally:
        await sender.stop()
    return phase


async def run(args: argparse.Namespace) -> bool:
    """Measure the floor, then the bot with a fast and a slow Rhombus; whether the goal was met."""
    per_phase = args.commands * args.bursts
    rhombus = RhombusSimulator(seed=1, max_exchanges=100)
    clip_ids = [
        rhombus.add_clip(title=f"Ack clip {n:04d}", script=completes(args.step_seconds))
        for n in range(2 * per_phase + args.commands)
    ]
    warmup, fast_ids, slow_ids = (
        clip_ids[: args.commands],
        clip_ids[args.commands : args.commands + per_phase],
        clip_ids[args.commands + per_phase :],
    )
    slack = SlackSimulator(channels=channels(10))
    fast = Phase("bot, Rhombus answering at once")
    slow = Phase(f"bot, Rhombus answering in {args.rhombus_delay:g} s")
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as folder:
        async with rhombus, slack:
            async with answering_at_once() as url:
                floor = await measure_without_bot(
                    url, "no bot: an endpoint answering at once", slack, args
                )
            async with serving_bare_bolt(slack.api_url) as url:
                bare = await measure_without_bot(
                    url, "no bot: Bolt, a listener that only acks", slack, args
                )
            settings = bot_settings(rhombus, slack, Path(folder) / "bot.db")
            bot = await BotProcess.start(settings, Path(folder) / "bot.log")
            sender = await CommandSender.start(
                f"http://127.0.0.1:{bot.ready.port}/slack/events", slack.base_url
            )
            try:
                await bursts(sender, None, warmup, args)
                await bursts(sender, fast, fast_ids, args)
                rhombus.inject(Fault("slow", delay=args.rhombus_delay, times=-1))
                await bursts(sender, slow, slow_ids, args)
                deadline = time.monotonic() + POSTING_TIMEOUT_SECONDS
                # The fake Slack is polled, briefly.
                while len(posted_at(slack.calls)) < len(clip_ids) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
            finally:
                await sender.stop()
                await bot.stop()
        posted = posted_at(slack.calls)

    say(f"## /clip acknowledgement ({machine()})")
    say()
    say(
        f"Per row: {args.bursts} bursts of {args.commands} signed /clip commands sent at once, "
        f"{args.pause:g} s apart, after one burst to warm up (connections, Bolt's first "
        "auth.test); the bot's default settings."
    )
    say()
    headers = [
        "",
        "commands",
        "non-200",
        "ack p50 ms",
        "ack p90 ms",
        "ack p99 ms",
        "ack max ms",
        "status posted",
        "posted p50 s",
        "posted max s",
    ]
    say(table(headers, [floor.row(None), bare.row(None), fast.row(posted), slow.row(posted)]))
    p99 = percentile(slow.latencies, 99)
    met = p99 < GOAL_P99_SECONDS and slow.failures == 0
    say()
    say(
        f"Goal, p99 < {GOAL_P99_SECONDS * 1000:.0f} ms with Rhombus at {args.rhombus_delay:g} s: "
        f"{'met' if met else 'MISSED'} (p99 {ms(p99)} ms; the floor's p99 is "
        f"{ms(percentile(floor.latencies, 99))} ms, Bolt alone's "
        f"{ms(percentile(bare.latencies, 99))} ms)."
    )
    return met


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goal was met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ack_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--commands", type=int, default=50, help="commands per burst (50)")
    parser.add_argument("--bursts", type=int, default=10, help="bursts per row (10)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between bursts (2)")
    parser.add_argument(
        "--rhombus-delay", type=float, default=2.0, help="the slow Rhombus's delay, s (2)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=60.0, help="length of each clip stage, s (60)"
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
