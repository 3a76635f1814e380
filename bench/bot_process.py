"""The real bot in a process of its own, measured from inside: poll lateness, CPU and memory.

A benchmark runs the simulators and its own load in its process and the bot in another, so that
the CPU time and memory measured are the bot's alone. `BotProcess.start(settings)` runs
`python -m bench.bot_process CONFIG` here; the child starts the bot with `Bot.start`, prints one
JSON line (`Ready`) and then answers one JSON line to each command it reads on stdin:

- `mark`: start measuring now (poll lateness, CPU time, the scheduler's job events);
- `report`: what was measured since the mark (`Measurement`);
- `stop`: stop the bot as SIGTERM would, and exit.

Poll lateness is read from APScheduler's own events, without touching the bot: a job submitted
(`EVENT_JOB_SUBMITTED`) is late by the time since its `scheduled_run_time`; a job finished
(`EVENT_JOB_EXECUTED`) took the time since it. The bot logs as it does when run for real
(`LOG_LEVEL`, default INFO, on stderr), with stderr sent to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)

from bench.figures import busiest_window, percentile
from bot.config import Settings
from bot.logs import configure_logging
from bot.runtime import Bot

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 120.0  # 10,000 stored trackings take a while to resume
STOP_TIMEOUT_SECONDS = 30.0
# Each answer is one JSON line; more room than asyncio's default 64 KiB costs nothing.
_LINE_LIMIT = 16 * 1024 * 1024
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Ready:
    """The bot is up: where it listens and how long starting it took."""

    port: int
    at: float  # time.monotonic() once ready
    started_at: float  # time.monotonic() just before Bot.start (one clock for every process)
    start_seconds: float  # Bot.start, from opening the database to every job scheduled
    jobs: int  # jobs in the scheduler when Bot.start returned
    rss_kb: int


@dataclass(frozen=True)
class Measurement:
    """What the bot's process did between `mark` and `report`."""

    seconds: float
    cpu_seconds: float
    rss_kb: int
    peak_rss_kb: int
    jobs: int
    submitted: int  # polls the scheduler started
    late_p50: float  # seconds from scheduled_run_time to submission
    late_p99: float
    late_max: float
    done: int  # polls that finished
    done_p50: float  # seconds from scheduled_run_time to the poll's end
    done_p99: float
    done_max: float
    missed: int  # polls dropped: started later than misfire_grace_time
    skipped: int  # polls dropped: the previous poll of that clip was still running
    errors: int  # polls that raised
    busiest_100ms: int  # most polls submitted in any 100 ms
    warnings: dict[str, int]  # WARNING and worse log records, by logger

    @property
    def cpu_percent(self) -> float:
        """CPU time over wall time (100 = one core busy)."""
        return 100 * self.cpu_seconds / self.seconds if self.seconds else 0.0


# --- The parent's side ---------------------------------------------------------------------------


class BotProcess:
    """The bot running in a child process, and the commands that measure it."""

    def __init__(
        self, process: asyncio.subprocess.Process, ready: Ready, log_path: Path, launched_at: float
    ) -> None:
        self._process = process
        self._log_path = log_path
        self.ready = ready
        self.launched_at = launched_at  # time.monotonic() just before the process was started
        self.stop_seconds = 0.0
        self.killed = False

    @classmethod
    async def start(
        cls, settings: Mapping[str, object], log_path: Path, profile_path: Path | None = None
    ) -> Self:
        """Start the bot with `settings` (Settings field names); return once it is ready.

        With `profile_path`, the child profiles itself (cProfile) from each `mark` to the next
        `report` and writes the statistics there.
        """
        config = {
            "settings": dict(settings),
            "log_path": str(log_path),
            "profile_path": None if profile_path is None else str(profile_path),
        }
        launched_at = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bot_process",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            limit=_LINE_LIMIT,
        )
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                answer = await _read_line(process, log_path)
        except BaseException:
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise
        return cls(process, Ready(**answer), log_path, launched_at)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    async def mark(self) -> float:
        """Start measuring; the child's time.monotonic() at the mark."""
        answer = await self._ask("mark")
        return float(answer["at"])

    async def report(self) -> Measurement:
        """What was measured since the last mark."""
        return Measurement(**await self._ask("report"))

    async def kill(self) -> None:
        """SIGKILL the bot, as a crash would, and wait for the process to end."""
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()
        self.killed = True

    async def stop(self) -> None:
        """Stop the bot as SIGTERM would; kill the process if it has not exited in time.

        `stop_seconds` says how long it took, `killed` whether it had to be killed.
        """
        if self._process.returncode is not None:
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await self._ask("stop")
                await self._process.wait()
        except (TimeoutError, ConnectionError, RuntimeError):
            self.killed = True
            with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
                self._process.kill()
            await self._process.wait()
        self.stop_seconds = time.monotonic() - started

    async def _ask(self, command: str) -> dict[str, Any]:
        stdin = self._process.stdin
        if stdin is None:
            raise RuntimeError("the bot process has no stdin")
        stdin.write(f"{command}\n".encode())
        await stdin.drain()
        return await _read_line(self._process, self._log_path)


async def _read_line(process: asyncio.subprocess.Process, log_path: Path) -> dict[str, Any]:
    if process.stdout is None:
        raise RuntimeError("the bot process has no stdout")
    line = await process.stdout.readline()
    if not line:
        code = await process.wait()
        # The log is in a temporary folder that is about to go: its end says what happened.
        tail = "\n".join(_last_lines(log_path, 20))
        raise RuntimeError(f"the bot process ended (exit status {code}); its log ends:\n{tail}")
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise TypeError(f"the bot process answered {line!r}")
    return answer


def _last_lines(path: Path, count: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-count:]


# --- The child's side ----------------------------------------------------------------------------


class _WarningCount(logging.Handler):
    """Counts WARNING and worse records by logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] += 1


class _Probe:
    """Listens to the scheduler's job events and keeps what a `Measurement` reports."""

    def __init__(
        self, scheduler: AsyncIOScheduler, warnings: _WarningCount, profile_path: str | None
    ) -> None:
        self._scheduler = scheduler
        self._warnings = warnings
        self._profile_path = profile_path
        self._profile: cProfile.Profile | None = None
        self.mark()
        scheduler.add_listener(
            self._on_event,
            EVENT_JOB_SUBMITTED
            | EVENT_JOB_EXECUTED
            | EVENT_JOB_ERROR
            | EVENT_JOB_MISSED
            | EVENT_JOB_MAX_INSTANCES,
        )

    def mark(self) -> float:
        self._since = time.monotonic()
        self._cpu = _cpu_seconds()
        self._late: list[float] = []
        self._done: list[float] = []
        self._submitted_at: list[float] = []
        self._missed = self._skipped = self._errors = 0
        self._warnings.counts.clear()
        if self._profile is not None:
            self._profile.disable()
        if self._profile_path is not None:
            self._profile = cProfile.Profile()
            self._profile.enable()
        return self._since

    def measurement(self) -> Measurement:
        if self._profile is not None and self._profile_path is not None:
            self._profile.disable()
            self._profile.dump_stats(self._profile_path)
            self._profile = None
        return Measurement(
            seconds=time.monotonic() - self._since,
            cpu_seconds=_cpu_seconds() - self._cpu,
            rss_kb=_rss_kb(),
            peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            jobs=len(self._scheduler.get_jobs()),
            submitted=len(self._late),
            late_p50=percentile(self._late, 50),
            late_p99=percentile(self._late, 99),
            late_max=max(self._late, default=0.0),
            done=len(self._done),
            done_p50=percentile(self._done, 50),
            done_p99=percentile(self._done, 99),
            done_max=max(self._done, default=0.0),
            missed=self._missed,
            skipped=self._skipped,
            errors=self._errors,
            busiest_100ms=busiest_window(self._submitted_at, 0.1),
            warnings=dict(self._warnings.counts),
        )

    def _on_event(self, event: JobEvent) -> None:
        now = datetime.now(UTC)
        if event.code == EVENT_JOB_SUBMITTED:
            at = time.monotonic()
            for scheduled in event.scheduled_run_times:
                self._late.append((now - scheduled).total_seconds())
                self._submitted_at.append(at)
        elif event.code in {EVENT_JOB_EXECUTED, EVENT_JOB_ERROR}:
            self._done.append((now - event.scheduled_run_time).total_seconds())
            self._errors += event.code == EVENT_JOB_ERROR
        elif event.code == EVENT_JOB_MISSED:
            self._missed += 1
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self._skipped += 1


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_kb() -> int:
    # statm's second field: resident pages now (ru_maxrss is only the peak).
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_KB


def _say(answer: Ready | Measurement | dict[str, object]) -> None:
    payload = answer if isinstance(answer, dict) else dataclasses.asdict(answer)
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _serve(config: Mapping[str, Any], warnings: _WarningCount) -> None:
    settings = Settings.model_validate(config["settings"])
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger().addHandler(warnings)
    started_at = time.monotonic()
    bot = await Bot.start(settings)
    start_seconds = time.monotonic() - started_at
    # Bot.start schedules the resumed jobs without yielding to the loop after the first: a
    # listener added now still sees every poll.
    probe = _Probe(bot.scheduler, warnings, config.get("profile_path"))
    jobs = len(bot.scheduler.get_jobs())
    _say(Ready(bot.port, time.monotonic(), started_at, start_seconds, jobs, _rss_kb()))
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        while command := (await commands.readline()).decode().strip():
            if command == "mark":
                _say({"at": probe.mark()})
            elif command == "report":
                _say(probe.measurement())
            elif command == "stop":
                break
    finally:
        await bot.stop()
    _say({"stopped": True})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bot described by the JSON config in argv[0] until told to stop."""
    arguments = sys.argv[1:] if argv is None else argv
    config = json.loads(arguments[0])
    # Line-buffered, as stderr is: the bot pays for its log lines as it would in production.
    with Path(config["log_path"]).open("a", buffering=1) as log:
        sys.stderr = log
        asyncio.run(_serve(config, _WarningCount()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
