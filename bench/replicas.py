"""Several replicas of the bot on one throwaway PostgreSQL database, for the replica benchmarks.

`deployment(...)` starts PostgreSQL (`standins.postgres`), both simulators, stores the followed
trackings, and yields a `Deployment` that starts replicas (each a `BotProcess` with a Slack
token of its own, so the Slack stand-in tells their calls apart), kills them, and samples what
each says on `/healthz` and `/metrics`. `Replicas` is that without the simulators or the
tokens, for bots whose workspaces bring their own (`bench.workspaces`).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.bot_process import BotProcess
from bench.stage import RhombusRequests, bot_settings, channels, store_trackings
from standins.postgres import fresh_database, postgres_server
from standins.rhombus import RhombusSimulator
from standins.slack import SlackSimulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

CHANNELS = 20
SCRAPE_TIMEOUT_SECONDS = 2.0


@dataclass
class Replica:
    """One replica: its process, its token (if it has one), and when it was started and ended."""

    number: int
    token: str
    bot: BotProcess
    started_at: float
    ended_at: float | None = None

    @property
    def url(self) -> str:
        """Where it serves /healthz and /metrics."""
        return f"http://127.0.0.1:{self.bot.ready.port}"


@dataclass(frozen=True)
class Seen:
    """What one replica said at one moment."""

    shards: frozenset[int]
    live: float  # clipbot_trackings_live
    polls: float  # clipbot_polls_total
    handovers: float  # clipbot_handover_seconds_count
    handover_seconds: float  # clipbot_handover_seconds_sum


@dataclass(frozen=True)
class Sample:
    """Every running replica at one moment, and the unfinished trackings in the database."""

    at: float
    replicas: dict[int, Seen]
    unfinished: int


@dataclass(kw_only=True)
class Replicas:
    """Bot processes started on one database with `settings`, and what they said when sampled."""

    database_url: str
    folder: Path
    settings: dict[str, object]
    replicas: list[Replica] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def running(self) -> list[Replica]:
        """The replicas not killed or stopped."""
        return [replica for replica in self.replicas if replica.ended_at is None]

    def replica_settings(self, number: int) -> tuple[str, dict[str, object]]:  # noqa: ARG002
        """The Slack token replica `number` is told apart by (none here), and its settings."""
        return "", dict(self.settings)

    async def start(self) -> Replica:
        """Start one more replica; return once it is ready."""
        number = len(self.replicas) + 1
        token, settings = self.replica_settings(number)
        started = time.monotonic()
        bot = await BotProcess.start(settings, self.folder / f"replica-{number}.log")
        replica = Replica(number, token, bot, started)
        self.replicas.append(replica)
        return replica

    async def kill(self, replica: Replica) -> float:
        """SIGKILL a replica; when."""
        killed = time.monotonic()
        replica.ended_at = killed
        await replica.bot.kill()
        return killed

    async def stop(self) -> None:
        """Stop every running replica as SIGTERM would."""
        for replica in self.running:
            replica.ended_at = time.monotonic()
            await replica.bot.stop()

    async def sample(self, client: httpx.AsyncClient, database: asyncpg.Connection) -> Sample:
        """Ask every running replica what it holds and does, and count unfinished trackings."""
        seen: dict[int, Seen] = {}
        for replica in self.running:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                health = (await client.get(f"{replica.url}/healthz")).json()
                metrics = _metrics((await client.get(f"{replica.url}/metrics")).text)
                seen[replica.number] = Seen(
                    shards=frozenset(health["shards"]),
                    live=metrics.get("clipbot_trackings_live", 0.0),
                    polls=metrics.get("clipbot_polls_total", 0.0),
                    handovers=metrics.get("clipbot_handover_seconds_count", 0.0),
                    handover_seconds=metrics.get("clipbot_handover_seconds_sum", 0.0),
                )
        unfinished = await database.fetchval(
            "SELECT count(*) FROM trackings WHERE state != 'finished'"
        )
        sample = Sample(time.monotonic(), seen, int(unfinished))
        self.samples.append(sample)
        return sample

    async def watch(self, every: float, until: asyncio.Event) -> None:
        """Sample every `every` seconds until `until` is set."""
        async with httpx.AsyncClient(trust_env=False, timeout=SCRAPE_TIMEOUT_SECONDS) as client:
            database = await asyncpg.connect(self.database_url)
            try:
                while not until.is_set():
                    await self.sample(client, database)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(until.wait(), every)
            finally:
                await database.close()


@dataclass(kw_only=True)
class Deployment(Replicas):
    """Replicas of a one-workspace bot, each with a Slack token of its own; the simulators."""

    rhombus: RhombusSimulator
    slack: SlackSimulator
    requests: RhombusRequests

    def replica_settings(self, number: int) -> tuple[str, dict[str, object]]:
        """A bot token of its own, so the Slack stand-in tells its calls apart."""
        token = f"xoxb-bench-replica-{number}"
        self.slack.add_bot_token(token)
        return token, {**self.settings, "slack_bot_token": token}


def _metrics(text: str) -> dict[str, float]:
    """Every unlabelled sample (and the sums of labelled ones) of a /metrics page, by name."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


@contextlib.asynccontextmanager
async def deployment(
    *,
    clips: int,
    teams: Sequence[str],
    step_seconds: float,
    slack_limit: int | None = None,
    **settings: object,
) -> AsyncIterator[Deployment]:
    """PostgreSQL, both simulators and `clips` followed trackings spread over `teams`.

    `slack_limit`: Slack's `chat.update` limit a minute in the stand-in (None: none). Every
    replica started gets `settings` over the bot's defaults.
    """
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="bench-") as folder:
        url = await fresh_database(server)
        rhombus = RhombusSimulator.from_scenario(
            "bench", n_clips=clips, step_seconds=step_seconds, seed=1, max_exchanges=10
        )
        requests = RhombusRequests()
        rhombus.on_request = requests
        channel_map = channels(CHANNELS)
        limits = {} if slack_limit is None else {"chat.update": slack_limit}
        slack = SlackSimulator(channels=channel_map, rate_limits=limits)
        async with rhombus, slack:
            async_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
            await store_trackings(
                async_url, rhombus, slack, rhombus.clip_uuids, list(channel_map), teams
            )
            base = bot_settings(rhombus, slack, Path(folder) / "unused.db", **settings)
            run = Deployment(
                rhombus=rhombus,
                slack=slack,
                requests=requests,
                database_url=url,
                folder=Path(folder),
                settings={**base, "database_url": url},
            )
            try:
                yield run
            finally:
                await run.stop()
