"""Soak test: the real bot for minutes against both stand-ins with random faults, then checks.

Run on demand, not by pytest: `python -m bench.soak --minutes 10 --clips 300`. The bot runs
in-process (`Bot.start`, SQLite in a temporary folder) with its default pacing (poll every 5 s,
48 edits a minute) against the Rhombus simulator and the Slack stand-in, both injecting faults at
random for the first three quarters of the run. Clips are asked for in waves of `/clip` commands
across several channels; a few are stuck OFFLINE (the bot gives up on them), a few are stopped with
the Stop button. After a fault-free drain (longer by at most a tenth while clips are still
followed) the script checks that every clip's end was delivered exactly once, that no status
message was posted twice, that no job is left, that every Retry-After was honoured and that memory
levelled off, and exits 0 only when all of that holds. docs/soak.md has what it found.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import json
import logging
import math
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, SupportsIndex, TextIO

import httpx

from bot.clips import Ending
from bot.config import Settings
from bot.logs import TextFormatter
from bot.runtime import Bot
from bot.status_message import ACTION_REFRESH, ACTION_STOP
from bot.store import TrackingState
from standins.rhombus import (
    Exchange,
    Fault,
    RhombusSimulator,
    completes,
    fails,
    gets_deleted,
    goes_offline,
    recovers_from_offline,
)
from standins.slack import ChannelSpec, SlackSimulator
from standins.slack_requests import Origin, SlackRequest, block_action, post, slash_command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from standins.rhombus import Step
    from standins.slack import Call, Ephemeral, Message, Revision

Kind = Literal["completes", "fails", "deleted", "recovers", "stuck", "stop"]

SIGNING_SECRET = secrets.token_hex(16)
TEAM = "T0SIM"
CHANNELS = tuple(f"C0SOAK{n}" for n in range(1, 7))
REQUESTERS = ("U0ALICE", "U0BOB", "U0CAROL")
STOPPER = "U0DAVE"
# Most clips one /clip follows (the bot's default MAX_CLIPS_PER_COMMAND).
CLIPS_PER_COMMAND = 5
# The bot's default MAX_POLL_INTERVAL_SECONDS: how late a stalled clip may be noticed.
MAX_POLL_INTERVAL = 60.0
EDITS_PER_MINUTE: float = Settings.model_fields["slack_edits_per_minute"].default
# In every twenty clips: what their Rhombus script does.
MIX: tuple[Kind, ...] = (
    *("completes",) * 11,
    *("fails",) * 2,
    *("deleted",) * 2,
    *("recovers",) * 2,
    *("stuck",) * 2,
    "stop",
)
CROSS_CHANNEL_SHARE = 0.03  # clips also asked for in a second channel
REASK_AFTER = 8.0  # seconds before a clip that got no status message is asked for again
MAX_ASKS = 12
# One Retry-After for every 429 on chat.update, so the soak knows how long edits must pause.
SLACK_EDIT_RETRY_AFTER = 2
# A request already on its way when Rhombus answered 429 may still arrive this much later; and
# one arriving this close to the end of the wait is not counted either, clocks being clocks.
IN_FLIGHT_GRACE = 0.25
CLOCK_SLACK = 0.05
RSS_EVERY = 10.0
PROGRESS_EVERY = 30.0
MEMORY_GROWTH_LIMIT = 0.10  # the last third's peak RSS may exceed the second third's by this
# The stand-ins keep logs for tests; capped here so RSS measures the bot, not the fakes' history.
RHOMBUS_EXCHANGES_KEPT = 20
SLACK_CALLS_KEPT = 200


@dataclass(frozen=True)
class SlackFault:
    """One way Slack misbehaves, armed with SlackSimulator.fail(probability=...)."""

    method: str
    probability: float
    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    delay: float = 0.0

    def describe(self) -> str:
        """E.g. `chat.update 429 ratelimited (Retry-After 3) p=0.01`."""
        what = (
            f"{self.delay:g} s delay"
            if self.delay
            else f"{self.status} {self.error or 'HTML page'}"
            + (f" (Retry-After {self.retry_after})" if self.retry_after else "")
        )
        return f"{self.method} {what} p={self.probability:g}"


RHOMBUS_FAULTS = (
    Fault("rate_limit", retry_after=1, probability=0.02, times=-1),
    Fault("rate_limit", retry_after=3, probability=0.01, times=-1),
    Fault("server_error", status=500, probability=0.02, times=-1),
    Fault("server_error", status=503, probability=0.02, times=-1),
    Fault("slow", delay=2.0, probability=0.03, times=-1),
    Fault("slow", delay=12.0, probability=0.005, times=-1),  # past the bot's 10 s timeout
    Fault("garbage", probability=0.01, times=-1),
    Fault("wrong_shape", probability=0.01, times=-1),
    Fault("disconnect", probability=0.01, times=-1),
)
SLACK_FAULTS = (
    SlackFault("chat.update", 0.03, "ratelimited", 429, retry_after=SLACK_EDIT_RETRY_AFTER),
    SlackFault("chat.update", 0.02, "internal_error", 500),
    SlackFault("chat.update", 0.02, "service_unavailable", 503),
    SlackFault("chat.update", 0.01, None, 500),
    SlackFault("chat.update", 0.03, delay=2.0),
    # chat.postMessage: status messages and the thread replies announcing the end alike.
    SlackFault("chat.postMessage", 0.02, "ratelimited", 429, retry_after=1),
    SlackFault("chat.postMessage", 0.02, "internal_error", 500),
    SlackFault("chat.postMessage", 0.02, "service_unavailable", 503),
    SlackFault("chat.postMessage", 0.01, None, 502),
    SlackFault("chat.postMessage", 0.03, delay=1.5),
)


@dataclass(frozen=True)
class Expectation:
    """How a followed clip must end: the status message's last words, and the thread reply."""

    ending: Ending
    shown: str  # in the status message's last revision
    reply: str | None  # in the one thread reply; None: no reply at all


EXPECTED: dict[Ending, Expectation] = {
    Ending.COMPLETE: Expectation(Ending.COMPLETE, "✅ Ready", "is ready"),
    Ending.FAILED: Expectation(Ending.FAILED, "❌ Failed", "failed"),
    Ending.DELETED: Expectation(
        Ending.DELETED, "This clip was deleted in Rhombus", "was deleted in Rhombus"
    ),
    Ending.GAVE_UP: Expectation(Ending.GAVE_UP, "Stopped following: no progress for", None),
    Ending.STOPPED: Expectation(
        Ending.STOPPED, f"Stopped following — stopped by <@{STOPPER}>", None
    ),
}
# Left on a status message that still thinks it is following, or stale after the end.
NEVER_AT_THE_END = (f'"{ACTION_STOP}"', f'"{ACTION_REFRESH}"', "Rhombus unreachable, retrying")


@dataclass(frozen=True)
class Plan:
    """The run's timeline, from its length."""

    minutes: float
    clips: int
    seed: int
    step_seconds: float
    give_up_minutes: float
    fault_scale: float

    @property
    def duration(self) -> float:
        """Seconds from the first wave to the checks."""
        return self.minutes * 60

    @property
    def waves_until(self) -> float:
        """New clips are asked for until then."""
        return 0.3 * self.duration

    @property
    def drain_at(self) -> float:
        """Faults stop then; the rest of the run lets every clip end."""
        return 0.75 * self.duration

    @property
    def wave_every(self) -> float:
        """Seconds between waves of commands."""
        return max(5.0, self.duration / 30)

    @property
    def waves(self) -> int:
        """How many waves bring new clips."""
        return int(self.waves_until // self.wave_every) + 1

    @property
    def stuck_until(self) -> float:
        """Clips stuck OFFLINE are asked for only until then, so the bot gives up before the drain.

        A stalled clip is polled 1.5 times less often each time, up to MAX_POLL_INTERVAL, so
        giving up is noticed at most that much after GIVE_UP_MINUTES.
        """
        give_up = self.give_up_minutes * 60
        noticed = min(1.5 * give_up, give_up + MAX_POLL_INTERVAL)
        return self.drain_at - (2 * self.step_seconds + noticed + 0.05 * self.duration)

    @property
    def reask_until(self) -> float:
        """A clip Slack or Rhombus kept from being followed is asked for again until then."""
        return self.drain_at + (self.duration - self.drain_at) / 2

    @property
    def overtime(self) -> float:
        """How much longer the drain may go on while clips are still followed."""
        return 0.1 * self.duration

    @property
    def budget_seconds(self) -> float:
        """Seconds of the workspace's edit budget the final edits alone take."""
        return self.clips * (1 + CROSS_CHANNEL_SHARE) * 60 / EDITS_PER_MINUTE


@dataclass
class Followed:
    """One clip asked for in one channel, and what the soak did with it."""

    clip_id: str
    channel: str
    kind: Kind
    title: str
    added_at: float  # soak seconds when the clip started in Rhombus
    requester: str
    asked: list[float] = field(default_factory=list)  # soak seconds of each /clip
    stop_pressed_at: float | None = None
    duplicate_asked_at: float | None = None  # asked again while followed: must not post again

    @property
    def expected(self) -> Expectation:
        """How it must end."""
        ending = {
            "completes": Ending.COMPLETE,
            "recovers": Ending.COMPLETE,
            "fails": Ending.FAILED,
            "deleted": Ending.DELETED,
            "stuck": Ending.GAVE_UP,
            "stop": Ending.STOPPED if self.stop_pressed_at is not None else Ending.COMPLETE,
        }[self.kind]
        return EXPECTED[ending]


@dataclass(frozen=True)
class Logged:
    """One Slack call the soak saw, for evidence."""

    at: float
    label: str  # status post, reply, edit
    channel: str
    ts: str  # the status message's ts (the thread's, for a reply)
    status: int
    error: str | None
    text: str


class ExchangeLog(list[Exchange]):
    """The Rhombus simulator's exchange log, noting what the soak needs of entries it drops.

    That is when each request arrived, the faults injected, and each 429 with its Retry-After.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []  # when each request arrived, and its path
        self._dropped_faults: Counter[str] = Counter()
        self._dropped_pauses: list[tuple[float, float]] = []

    def append(self, exchange: Exchange) -> None:
        """Keep the exchange and note when it arrived."""
        self.arrivals.append((exchange.at, exchange.path.rsplit("/", 1)[-1]))
        super().append(exchange)

    def __delitem__(self, key: SupportsIndex | slice) -> None:
        """Drop entries, noting the faults they carried."""
        gone = self[key] if isinstance(key, slice) else [self[key]]
        self._dropped_faults.update(_fault_label(e) for e in gone if e.fault)
        self._dropped_pauses.extend(_pauses(gone))
        super().__delitem__(key)

    def faults(self) -> Counter[str]:
        """Every fault injected so far, by kind."""
        return self._dropped_faults + Counter(_fault_label(e) for e in self if e.fault)

    def pauses(self) -> list[tuple[float, float]]:
        """When each injected 429 arrived, and its Retry-After in seconds."""
        return self._dropped_pauses + _pauses(self)


def _fault_label(exchange: Exchange) -> str:
    if exchange.fault == "server_error":
        return f"server_error {exchange.status}"
    if exchange.fault == "slow" and exchange.status is None:
        return "slow, bot gave up"  # the bot's timeout cancelled it before the answer
    return str(exchange.fault)


def _pauses(exchanges: Sequence[Exchange]) -> list[tuple[float, float]]:
    return [
        (e.at, float(e.response_headers.get("retry-after") or 1))
        for e in exchanges
        if e.fault == "rate_limit"
    ]


class ErrorLog(logging.Handler):
    """Counts the bot's ERROR records and keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record; keep its message while fewer than ten are kept."""
        self.count += 1
        if len(self.first) < 10:
            self.first.append(f"{record.name}: {record.getMessage()}")


@dataclass
class Memory:
    """RSS samples (seconds, kB)."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, at: float) -> int:
        """Read VmRSS of this process now."""
        rss = _rss_kb()
        self.samples.append((at, rss))
        return rss

    def thirds(self, duration: float) -> tuple[int, int, int]:
        """Peak RSS in each third of the run."""
        peaks = [0, 0, 0]
        for at, rss in self.samples:
            third = min(2, int(3 * at / duration))
            peaks[third] = max(peaks[third], rss)
        return peaks[0], peaks[1], peaks[2]


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Soak:
    """The bot between the two stand-ins, the clips asked for, and what was seen."""

    def __init__(
        self,
        plan: Plan,
        bot: Bot,
        rhombus: RhombusSimulator,
        slack: SlackSimulator,
        errors: ErrorLog,
    ) -> None:
        self.plan = plan
        self.bot = bot
        self.rhombus = rhombus
        self.slack = slack
        self.rng = random.Random(plan.seed)  # noqa: S311  # a simulation, not cryptography
        self.http = httpx.AsyncClient(trust_env=False, timeout=30)
        self.started = time.monotonic()
        self.followed: dict[tuple[str, str], Followed] = {}
        self.calls: Counter[str] = Counter()
        self.log: list[Logged] = []
        self.memory = Memory()
        self.exchanges = ExchangeLog()
        self.errors = errors
        self.kinds = self._kinds()
        self.wave = 0
        self.asked_clips = 0
        self.presses: Counter[str] = Counter()
        self.faults_on = False
        self.max_lag = 0.0
        self.open_at_last_count = 0
        self.last_open_at: float | None = None  # when clips were last seen still followed
        self.overtime_said = False
        rhombus.exchanges = self.exchanges
        slack.on_call = self._saw

    def now(self) -> float:
        """Seconds since the soak started."""
        return time.monotonic() - self.started

    def _kinds(self) -> list[Kind]:
        kinds = [MIX[index % len(MIX)] for index in range(self.plan.clips)]
        self.rng.shuffle(kinds)
        return kinds

    # --- Faults -----------------------------------------------------------------------------

    def start_faults(self) -> None:
        """Arm every fault on both sides, each with its (scaled) probability."""
        scale = self.plan.fault_scale
        for fault in RHOMBUS_FAULTS:
            probability = min(1.0, fault.probability * scale)
            self.rhombus.inject(dataclasses.replace(fault, probability=probability))
        for slack_fault in SLACK_FAULTS:
            self.slack.fail(
                slack_fault.method,
                error=slack_fault.error,
                status=slack_fault.status,
                retry_after=slack_fault.retry_after,
                delay=slack_fault.delay,
                times=-1,
                probability=min(1.0, slack_fault.probability * scale),
            )
        self.faults_on = True

    def stop_faults(self) -> None:
        """Let both stand-ins behave from now on."""
        self.rhombus.clear_faults()
        self.slack.clear_failures()
        self.faults_on = False

    # --- What Slack saw -----------------------------------------------------------------------

    def _saw(self, call: Call) -> None:
        if call.method not in {"chat.postMessage", "chat.update"}:
            self.calls[f"{call.method} {_outcome(call)}"] += 1
            return
        args = call.args
        if call.method == "chat.update":
            label, ts = "edit", str(args.get("ts") or "")
        elif args.get("thread_ts"):
            label, ts = "reply", str(args["thread_ts"])
        else:
            label, ts = "status post", str((call.response or {}).get("ts") or "")
        self.calls[f"{label} {_outcome(call)}"] += 1
        self.log.append(
            Logged(
                at=call.time - self.started,
                label=label,
                channel=str(args.get("channel") or ""),
                ts=ts,
                status=call.status,
                error=call.error,
                text=str(args.get("text") or "")[:120],
            )
        )

    def status_messages(self) -> dict[tuple[str, str], list[Message]]:
        """The bot's top-level messages by (channel, clip id), from their metadata."""
        found: dict[tuple[str, str], list[Message]] = {}
        for message in self.slack.messages.values():
            if message.bot_id is None or message.thread_ts is not None:
                continue
            payload = (message.metadata or {}).get("event_payload") or {}
            clip_id = str(payload.get("clip_id") or "")
            found.setdefault((message.channel, clip_id), []).append(message)
        return found

    # --- Driving the bot ----------------------------------------------------------------------

    async def send(self, request: SlackRequest) -> None:
        """Post a signed request to the bot's /slack/events, as Slack does."""
        response = await post(
            f"http://127.0.0.1:{self.bot.port}/slack/events",
            request,
            signing_secret=SIGNING_SECRET,
            client=self.http,
        )
        self.calls[f"bot answered {response.status_code}"] += 1

    async def clip_command(self, channel: str, user: str, clip_ids: Sequence[str]) -> None:
        """`/clip id id …` typed in `channel` by `user`."""
        origin = Origin(user_id=user, user_name=user.lower(), channel_id=channel)
        request = slash_command(
            " ".join(clip_ids), response_url=self.slack.response_url(), origin=origin
        )
        await self.send(request)

    async def run_wave(self) -> None:
        """Ask for this wave's new clips, re-ask refused ones, press a few buttons."""
        now = self.now()
        commands: dict[tuple[str, str], list[str]] = {}
        if self.wave < self.plan.waves:
            self._new_clips(now, commands)
        await self._reask(now, commands)
        await self._duplicate(now, commands)
        for (channel, user), clip_ids in commands.items():
            for start in range(0, len(clip_ids), CLIPS_PER_COMMAND):
                await self.clip_command(channel, user, clip_ids[start : start + CLIPS_PER_COMMAND])
        await self._press_buttons(now)
        self.wave += 1

    def _new_clips(self, now: float, commands: dict[tuple[str, str], list[str]]) -> None:
        per_wave = math.ceil(self.plan.clips / self.plan.waves)
        first = self.wave * per_wave
        for index in range(first, min(self.plan.clips, first + per_wave)):
            kind = self.kinds[index]
            if kind == "stuck" and now > self.plan.stuck_until:
                kind = "completes"  # too late to be given up on before the drain
            title = f"Soak clip {index + 1:04d} ({kind})"
            clip_id = self.rhombus.add_clip(title=title, script=self._script(kind))
            channel = CHANNELS[(self.wave + index) % len(CHANNELS)]
            requester = REQUESTERS[index % len(REQUESTERS)]
            channels = [channel]
            if self.rng.random() < CROSS_CHANNEL_SHARE:
                channels.append(CHANNELS[(self.wave + index + 1) % len(CHANNELS)])
            for where in channels:
                self.followed[where, clip_id] = Followed(
                    clip_id, where, kind, title, now, requester, asked=[now]
                )
                commands.setdefault((where, requester), []).append(clip_id)
            self.asked_clips += 1

    def _script(self, kind: Kind) -> tuple[Step, ...]:
        step = self.plan.step_seconds
        if kind == "fails":
            return fails(step)
        if kind == "deleted":
            return gets_deleted(step)
        if kind == "recovers":
            return recovers_from_offline(step)
        if kind == "stuck":
            return goes_offline(step)
        if kind == "stop":
            return completes(4 * step)  # slow, so the Stop press comes long before the end
        return completes(step)

    async def _reask(self, now: float, commands: dict[tuple[str, str], list[str]]) -> None:
        """Ask again for clips that got no status message: a person would retry."""
        posted = self.status_messages()
        for key, followed in self.followed.items():
            if key in posted or now - followed.asked[-1] < REASK_AFTER:
                continue
            if len(followed.asked) >= MAX_ASKS:
                continue
            if await self.bot.store.find_open(TEAM, followed.channel, followed.clip_id):
                continue
            followed.asked.append(now)
            commands.setdefault((followed.channel, followed.requester), []).append(followed.clip_id)

    async def _duplicate(self, now: float, commands: dict[tuple[str, str], list[str]]) -> None:
        """Ask once more for a clip already followed in its channel: it must not be posted again."""
        posted = self.status_messages()
        give_up = self.plan.give_up_minutes * 60
        candidates = [
            f
            for key, f in self.followed.items()
            if f.kind == "stuck"
            and f.duplicate_asked_at is None
            and key in posted
            and now - f.added_at < give_up / 2
        ]
        for followed in self.rng.sample(candidates, min(2, len(candidates))):
            if await self.bot.store.find_open(TEAM, followed.channel, followed.clip_id) is None:
                continue
            followed.duplicate_asked_at = now
            commands.setdefault((followed.channel, STOPPER), []).append(followed.clip_id)

    async def _press_buttons(self, now: float) -> None:
        posted = self.status_messages()
        live: list[tuple[Followed, Message]] = []
        for key, followed in self.followed.items():
            messages = posted.get(key)
            if not messages:
                continue
            tracking = await self.bot.store.find_by_message(followed.channel, messages[0].ts)
            if tracking is None or tracking.state != TrackingState.FOLLOWING:
                continue
            if followed.kind == "stop" and followed.stop_pressed_at is None:
                if now - followed.added_at < 6 * self.plan.step_seconds:
                    await self._press(ACTION_STOP, followed, messages[0])
                    followed.stop_pressed_at = now
                continue
            live.append((followed, messages[0]))
        for followed, message in self.rng.sample(live, min(2, len(live))):
            await self._press(ACTION_REFRESH, followed, message)

    async def _press(self, action: str, followed: Followed, message: Message) -> None:
        origin = Origin(user_id=STOPPER, user_name="dave", channel_id=followed.channel)
        request = block_action(
            action,
            followed.clip_id,
            message=message,
            response_url=self.slack.response_url(channel=followed.channel, ts=message.ts),
            origin=origin,
        )
        await self.send(request)
        self.presses[action] += 1

    # --- Watching -----------------------------------------------------------------------------

    async def progress(self, phase: str) -> None:
        """One line: where the run is."""
        unfinished = len(await self.bot.store.unfinished())
        posted = len(self.status_messages())
        faults = sum(self.exchanges.faults().values())
        slack_failed = sum(
            n
            for key, n in self.calls.items()
            if key.startswith(("edit ", "reply ", "status post ")) and not key.endswith(" ok")
        )
        say(
            f"[{self.now():5.0f} s {phase:<6}] clips asked {self.asked_clips}/{self.plan.clips}, "
            f"status messages {posted}, following {unfinished}, jobs "
            f"{len(self.bot.scheduler.get_jobs())} | edits ok {self.calls['edit ok']}, "
            f"replies ok {self.calls['reply ok']}, Slack failures {slack_failed} | Rhombus calls "
            f"{sum(self.rhombus.calls.values())}, faults {faults} | RSS "
            f"{self.memory.samples[-1][1] / 1024:.0f} MB, loop lag max {self.max_lag:.2f} s",
        )

    def trim_stand_in_logs(self) -> None:
        """Keep the Slack stand-in's call list short; the soak keeps its own record."""
        del self.slack.calls[:-SLACK_CALLS_KEPT]

    async def drive(self) -> None:
        """The whole timeline: waves with faults, then the drain (longer while clips are open)."""
        plan = self.plan
        next_wave = next_rss = next_count = 0.0
        next_progress = PROGRESS_EVERY
        self.start_faults()
        tick = 0.5
        while (now := self.now()) < plan.duration or (
            now < plan.duration + plan.overtime and self.open_at_last_count
        ):
            if now >= next_count:
                # The edit budget, not the bot's logic, decides when the last clip can end.
                self.open_at_last_count = len(await self.bot.store.unfinished())
                if self.open_at_last_count or self.last_open_at is None:
                    self.last_open_at = now
                next_count += 5.0
            if now >= plan.duration and not self.overtime_said:
                self.overtime_said = True
                say(f"[{now:5.0f} s] {self.open_at_last_count} clip(s) still followed: overtime")
            if self.faults_on and now >= plan.drain_at:
                self.stop_faults()
                say(f"[{now:5.0f} s] faults off: draining")
            if now >= next_wave and now < plan.reask_until:
                await self.run_wave()
                next_wave += plan.wave_every
            if now >= next_rss:
                self.memory.sample(now)
                self.trim_stand_in_logs()
                next_rss += RSS_EVERY
            if now >= next_progress:
                await self.progress("faults" if self.faults_on else "drain")
                next_progress += PROGRESS_EVERY
            before = time.monotonic()
            await asyncio.sleep(tick)
            self.max_lag = max(self.max_lag, time.monotonic() - before - tick)
        self.memory.sample(self.now())


# --- Checking -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The checks' outcome: each check's name with its failures, and per-clip evidence."""

    checks: dict[str, list[str]] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    def fail(self, check: str, problem: str) -> None:
        """Record one problem under a check."""
        self.checks.setdefault(check, []).append(problem)

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return not any(self.checks.values())


FINAL_STATES = "final state shown on every status message"
ONE_REPLY = "one thread reply for each ready/failed/deleted clip, none for the others"
ONE_POST = "one status message per (channel, clip)"
NO_JOBS = "no job left; every tracking finished in the database"
MEMORY = "memory levelled off"
NO_ERRORS = "no ERROR logged by the bot"
RETRY_AFTER = "Retry-After honoured: no Rhombus call, no chat.update, until a 429's wait is over"


async def check(soak: Soak) -> Verdict:
    """Every check of the brief, with the failing clips and what Slack and the database show."""
    verdict = Verdict()
    for name in (FINAL_STATES, ONE_REPLY, ONE_POST, NO_JOBS, RETRY_AFTER, MEMORY, NO_ERRORS):
        verdict.checks[name] = []
    posted = soak.status_messages()
    for key, followed in sorted(soak.followed.items(), key=lambda item: item[1].added_at):
        problems = await _check_clip(soak, followed, posted.get(key, []), verdict)
        if problems:
            verdict.evidence.append(await _evidence(soak, followed, posted.get(key, []), problems))
    strays = set(posted) - set(soak.followed)
    for channel, clip_id in sorted(strays):
        verdict.fail(ONE_POST, f"{clip_id} in {channel}: a status message nobody asked for")

    jobs = soak.bot.scheduler.get_jobs()
    if jobs:
        verdict.fail(NO_JOBS, f"{len(jobs)} job(s) left: {', '.join(job.name for job in jobs)}")
    for tracking in await soak.bot.store.unfinished():
        verdict.fail(NO_JOBS, f"tracking {tracking.id} ({tracking.clip_id}) is {tracking.state}")

    for problem in _calls_during_pauses(soak):
        verdict.fail(RETRY_AFTER, problem)
    _, second, third = soak.memory.thirds(soak.now())
    if third > second * (1 + MEMORY_GROWTH_LIMIT):
        verdict.fail(
            MEMORY,
            f"peak RSS grew from {second / 1024:.0f} MB in the second third "
            f"to {third / 1024:.0f} MB in the last",
        )
    if soak.errors.count:
        verdict.fail(NO_ERRORS, f"{soak.errors.count} ERROR record(s): {soak.errors.first}")
    return verdict


def _calls_during_pauses(soak: Soak) -> list[str]:
    """Requests sent while Rhombus's or Slack's Retry-After was still running."""
    problems: list[str] = []
    arrivals = sorted(soak.exchanges.arrivals)
    times = [arrival for arrival, _ in arrivals]
    for at, wait in soak.exchanges.pauses():
        start = bisect.bisect_right(times, at + IN_FLIGHT_GRACE)
        end = bisect.bisect_left(times, at + wait - CLOCK_SLACK)
        if end > start:
            offsets = ", ".join(
                f"{path} +{arrival - at:.2f} s" for arrival, path in arrivals[start:end]
            )
            problems.append(
                f"Rhombus answered 429 (Retry-After {wait:g} s) at {at - soak.started:.1f} s; "
                f"{end - start} call(s) reached it {offsets} later"
            )
    edits = [entry for entry in soak.log if entry.label == "edit"]
    for index, limited in enumerate(edits):
        if limited.status != 429:
            continue
        wait_over = limited.at + SLACK_EDIT_RETRY_AFTER - CLOCK_SLACK
        early = [e for e in edits[index + 1 :] if e.at < wait_over]
        if early:
            problems.append(
                f"chat.update answered 429 (Retry-After {SLACK_EDIT_RETRY_AFTER} s) at "
                f"{limited.at:.1f} s; {len(early)} edit(s) followed "
                + ", ".join(f"+{e.at - limited.at:.2f} s" for e in early)
                + " later"
            )
    return problems


async def _check_clip(
    soak: Soak, followed: Followed, messages: list[Message], verdict: Verdict
) -> list[str]:
    """Check one (channel, clip); record its problems in the verdict and return them."""
    found: list[tuple[str, str]] = []
    if not messages:
        found.append((ONE_POST, f"never posted (asked {len(followed.asked)} time(s))"))
    else:
        if len(messages) > 1:
            found.append((ONE_POST, f"posted {len(messages)} times: {[m.ts for m in messages]}"))
        message = messages[0]
        found += _check_status_message(message, followed.expected)
        found += _check_replies(soak, message, followed.expected)
        tracking = await soak.bot.store.find_by_message(message.channel, message.ts)
        if tracking is None:
            found.append((NO_JOBS, "no tracking stored for its status message"))
        elif (tracking.state, tracking.ending) != (
            TrackingState.FINISHED,
            followed.expected.ending,
        ):
            stored = f"tracking {tracking.id} is {tracking.state}/{tracking.ending}"
            found.append((FINAL_STATES, f"{stored}, expected finished/{followed.expected.ending}"))
    name = f"{followed.clip_id} in {followed.channel} ({followed.kind})"
    for check_name, problem in found:
        verdict.fail(check_name, f"{name}: {problem}")
    return [problem for _, problem in found]


def _check_status_message(message: Message, expected: Expectation) -> list[tuple[str, str]]:
    found = []
    last = message.revisions[-1]
    shown = _shown(last)
    if expected.shown not in shown:
        found.append(
            (FINAL_STATES, f"last revision does not show {expected.shown!r}: {last.text!r}")
        )
    if stale := [marker for marker in NEVER_AT_THE_END if marker in shown]:
        found.append((FINAL_STATES, f"last revision still shows {stale}: {last.text!r}"))
    if (
        again := len(message.revisions) - 1 - message.revisions.index(_ended(message, expected))
    ) > 0:
        found.append((FINAL_STATES, f"edited {again} more time(s) after it showed its end"))
    return found


def _check_replies(soak: Soak, message: Message, expected: Expectation) -> list[tuple[str, str]]:
    replies = soak.slack.thread_replies(message.channel, message.ts)
    # A clip that had already ended when /clip finally got through is answered by the status
    # message itself, posted final: no reply.
    wanted = 0 if expected.reply is None or _posted_final(message, expected) else 1
    if len(replies) != wanted:
        return [(ONE_REPLY, f"{len(replies)} thread replies, expected {wanted}")]
    if not replies or expected.reply is None:
        return []
    if expected.reply not in replies[0].text:
        return [(ONE_REPLY, f"reply does not say {expected.reply!r}: {replies[0].text!r}")]
    if replies[0].revisions[0].time < _ended(message, expected).time:
        return [(ONE_REPLY, "the reply came before the status message showed the end")]
    return []


def _ended(message: Message, expected: Expectation) -> Revision:
    """The first revision of a status message that shows its end (else its last)."""
    return next(
        (r for r in message.revisions if expected.shown in _shown(r)), message.revisions[-1]
    )


def _posted_final(message: Message, expected: Expectation) -> bool:
    first = message.revisions[0]
    return first.method == "chat.postMessage" and expected.shown in _shown(first)


def _shown(revision: Revision) -> str:
    """Everything a person reads in one state of a message: its text and its blocks' texts."""
    return revision.text + "\n" + json.dumps(revision.blocks, ensure_ascii=False)


async def _evidence(
    soak: Soak, followed: Followed, messages: list[Message], problems: list[str]
) -> str:
    expected = followed.expected.ending
    lines = [
        f"clip {followed.clip_id} “{followed.title}” in {followed.channel}: expected {expected}",
        f"  problems: {'; '.join(problems)}",
        f"  started in Rhombus at {followed.added_at:.1f} s; /clip at "
        f"{', '.join(f'{at:.1f}' for at in followed.asked)} s"
        + (
            f"; Stop pressed at {followed.stop_pressed_at:.1f} s"
            if followed.stop_pressed_at
            else ""
        ),
    ]
    lines.extend(
        f"  told the asker: {ephemeral.text[:150]!r}"
        for ephemeral in soak.slack.ephemerals
        if followed.clip_id in ephemeral.text
    )
    for message in messages:
        tracking = await soak.bot.store.find_by_message(message.channel, message.ts)
        if tracking is not None:
            lines.append(
                f"  tracking {tracking.id}: state {tracking.state}, ending {tracking.ending}, "
                f"final_reply_sent {tracking.final_reply_sent}, notice {tracking.notice!r}"
            )
        lines.append(f"  status message ts {message.ts}, revisions:")
        lines.extend(
            f"    {revision.time - soak.started:7.1f} s {revision.method}: {revision.text[:110]}"
            for revision in message.revisions
        )
        lines.append("  Slack calls about it:")
        lines.extend(
            f"    {entry.at:7.1f} s {entry.label} -> {entry.status} {entry.error or 'ok'}"
            f" {entry.text[:80]!r}"
            for entry in soak.log
            if entry.channel == message.channel and entry.ts == message.ts
        )
    return "\n".join(lines)


# --- Reporting ------------------------------------------------------------------------------


def report(soak: Soak, verdict: Verdict, elapsed: float) -> None:
    """Print what ran, what was injected, and each check's outcome."""
    plan = soak.plan
    kinds = Counter(f.kind for f in soak.followed.values())
    endings = Counter(str(f.expected.ending) for f in soak.followed.values())
    first, second, third = soak.memory.thirds(elapsed)
    rss = [kb for _, kb in soak.memory.samples]
    say("\n=== Soak report ===")
    say(
        f"ran {elapsed / 60:.1f} min (last clip seen still followed at "
        f"{soak.last_open_at or 0:.0f} s, counted every 5 s): {soak.asked_clips} clips, "
        f"{len(soak.followed)} "
        f"(channel, clip) pairs in {len(CHANNELS)} channels, {soak.wave} waves; "
        f"step {plan.step_seconds:g} s, GIVE_UP_MINUTES {plan.give_up_minutes:g}, seed {plan.seed}"
    )
    say(
        f"scripts: {dict(sorted(kinds.items()))}; expected endings: {dict(sorted(endings.items()))}"
    )
    say(
        f"/clip re-asked after a refusal: "
        f"{sum(len(f.asked) - 1 for f in soak.followed.values())}; asked again while followed: "
        f"{sum(1 for f in soak.followed.values() if f.duplicate_asked_at is not None)}; "
        f"buttons pressed: {dict(soak.presses)}"
    )
    posted = soak.status_messages()
    posted_final = sum(
        1
        for key, followed in soak.followed.items()
        if key in posted and _posted_final(posted[key][0], followed.expected)
    )
    say(
        f"ephemeral answers: {dict(sorted(_answers(soak.slack.ephemerals).items()))}; "
        f"status messages posted already final (clip had ended before /clip got through): "
        f"{posted_final}"
    )
    say(f"Rhombus faults injected: {dict(sorted(soak.exchanges.faults().items()))}")
    say(f"Rhombus calls: {dict(sorted(soak.rhombus.calls.items()))}")
    say(f"Slack calls: {dict(sorted(soak.calls.items()))}")
    say(
        f"RSS: start {rss[0] / 1024:.0f} MB, peak {max(rss) / 1024:.0f} MB, end "
        f"{rss[-1] / 1024:.0f} MB; peak per third {first / 1024:.0f} / {second / 1024:.0f} / "
        f"{third / 1024:.0f} MB (limit: last third <= second third + "
        f"{MEMORY_GROWTH_LIMIT:.0%}); event loop lag max {soak.max_lag:.2f} s"
    )
    say("checks:")
    for name, problems in verdict.checks.items():
        say(f"  {'PASS' if not problems else 'FAIL'}  {name}")
        for problem in problems[:20]:
            say(f"          {problem}")
        if len(problems) > 20:
            say(f"          …and {len(problems) - 20} more")
    if verdict.evidence:
        say("\nevidence for the failing clips (seconds since the start of the soak):")
        for block in verdict.evidence[:15]:
            say(block)
        if len(verdict.evidence) > 15:
            say(f"…and {len(verdict.evidence) - 15} more clips")
    say(f"\nresult: {'PASS' if verdict.passed else 'FAIL'}")


# --- Running --------------------------------------------------------------------------------


def say(text: str = "", out: TextIO = sys.stdout) -> None:
    """Write one line of the soak's output at once: it runs for minutes."""
    out.write(text + "\n")
    out.flush()


ANSWERS = {
    "Rhombus is unreachable right now": "Rhombus unreachable",
    "Rhombus is busy": "Rhombus busy",
    "Slack refused the status message": "Slack refused the post",
    "already being followed": "already followed",
    "no longer being followed": "no longer followed",
}


def _answers(ephemerals: Sequence[Ephemeral]) -> Counter[str]:
    """What the bot told people, by kind of answer (one per clip noted)."""
    seen: Counter[str] = Counter()
    for ephemeral in ephemerals:
        for line in ephemeral.text.splitlines():
            label = next((name for text, name in ANSWERS.items() if text in line), "other")
            seen[label] += 1
    return seen


def _outcome(call: Call) -> str:
    if call.ok:
        return "ok"
    return f"{call.status} {call.error or 'html'}"


def _configure_logging(path: Path, errors: ErrorLog) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, errors]
    root.setLevel(logging.INFO)
    # Every poll and every request would otherwise be a line.
    for noisy in ("apscheduler", "httpx", "httpcore", "aiohttp.access", "slack_sdk", "slack_bolt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def run(plan: Plan, log_path: Path) -> int:
    """Run the soak; 0 when every check passed."""
    with tempfile.TemporaryDirectory(prefix="rhombus-clip-bot-soak-") as folder:
        rhombus = RhombusSimulator(
            api_key="soak-" + secrets.token_hex(8),
            seed=plan.seed,
            max_exchanges=RHOMBUS_EXCHANGES_KEPT,
        )
        slack = SlackSimulator(
            bot_token="xoxb-soak-" + secrets.token_hex(8),
            team_id=TEAM,
            channels={channel: ChannelSpec(channel.lower()) for channel in CHANNELS},
            seed=plan.seed,
        )
        async with rhombus, slack:
            settings = Settings(
                _env_file=None,
                slack_bot_token=slack.bot_token,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.api_url,
                rhombus_api_key=rhombus.api_key,
                rhombus_api_url=rhombus.url,
                rhombus_media_url=rhombus.url,
                # The soak checks following; tests/test_delivery.py the video and thumbnail.
                deliver_video=False,
                deliver_thumbnail=False,
                database_url=f"sqlite:///{Path(folder) / 'soak.db'}",
                give_up_minutes=plan.give_up_minutes,
                host="127.0.0.1",
                port=0,
            )
            errors = ErrorLog()
            _configure_logging(log_path, errors)
            bot = await Bot.start(settings)
            soak = Soak(plan, bot, rhombus, slack, errors)
            try:
                await soak.drive()
                verdict = await check(soak)
            finally:
                await soak.http.aclose()
                await bot.stop()
    report(soak, verdict, soak.now())
    say(f"bot log: {log_path}")
    return 0 if verdict.passed else 1


def parse_plan(argv: Sequence[str] | None = None) -> tuple[Plan, Path]:
    """The plan from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--clips", type=int, default=300, help="clips asked for in all")
    parser.add_argument("--seed", type=int, default=1, help="seeds every random choice")
    parser.add_argument(
        "--step-seconds", type=float, help="length of each stage of a clip's script"
    )
    parser.add_argument("--give-up-minutes", type=float, help="the bot's GIVE_UP_MINUTES")
    parser.add_argument(
        "--fault-scale", type=float, default=1.0, help="multiplies every fault's probability"
    )
    parser.add_argument("--log", type=Path, help="where the bot's log goes")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.clips < 1 or args.fault_scale < 0:
        parser.error("--minutes and --clips must be positive, --fault-scale not negative")
    duration = args.minutes * 60
    plan = Plan(
        minutes=args.minutes,
        clips=args.clips,
        seed=args.seed,
        step_seconds=args.step_seconds or min(12.0, max(2.0, duration / 50)),
        give_up_minutes=args.give_up_minutes or min(3.0, 0.3 * args.minutes),
        fault_scale=args.fault_scale,
    )
    log_path = args.log or Path(tempfile.gettempdir()) / f"soak-{int(time.time())}.log"
    return plan, log_path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak from the command line."""
    plan, log_path = parse_plan(argv)
    say(
        f"Soak: {plan.minutes:g} min, {plan.clips} clips in {plan.waves} waves every "
        f"{plan.wave_every:g} s until {plan.waves_until:.0f} s, step {plan.step_seconds:g} s, "
        f"GIVE_UP_MINUTES {plan.give_up_minutes:g} (stuck clips until {plan.stuck_until:.0f} s), "
        f"faults until {plan.drain_at:.0f} s, then drain until {plan.duration:.0f} s (up to "
        f"{plan.overtime:.0f} s more while clips are followed); seed {plan.seed}.\n"
        f"Final edits alone take about {plan.budget_seconds:.0f} s of the "
        f"{EDITS_PER_MINUTE:g}/min edit budget.\n"
        "Slack faults: SlackSimulator.fail(probability=...), seeded:\n  "
        + "\n  ".join(fault.describe() for fault in SLACK_FAULTS)
        + "\nRhombus faults: Fault(probability=...), seeded:\n  "
        + "\n  ".join(
            f"{f.kind}"
            + (f" {f.status}" if f.kind == "server_error" else "")
            + (f" Retry-After {f.retry_after}" if f.kind == "rate_limit" else "")
            + (f" {f.delay:g} s" if f.kind == "slow" else "")
            + f" p={f.probability:g}"
            for f in RHOMBUS_FAULTS
        )
        + (f"\n(every probability x {plan.fault_scale:g})" if plan.fault_scale != 1 else ""),
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(plan, log_path))
    return 130


if __name__ == "__main__":
    sys.exit(main())
