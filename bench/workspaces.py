"""Many workspaces: installed workspaces, each with its own Rhombus organisation, over replicas.

    python -m bench.workspaces [--workspaces 50] [--clips-per-workspace 20] [--replicas 1 3]
                               [--duration 60]

The bots run as an app installed into many workspaces (SLACK_CLIENT_ID, ENCRYPTION_KEYS). For
each number of `--replicas`, a fresh throwaway PostgreSQL database holds, before any bot starts,
`--workspaces` installations as an OAuth install stores them (bot tokens sealed with the bots'
ENCRYPTION_KEYS), each workspace's Rhombus key (sealed likewise; every fifth organisation in the
EU region, served by a second Rhombus host) and `--clips-per-workspace` followed trackings per
workspace, their status messages in that workspace's channels of the Slack stand-in. Each
organisation is a `RhombusSimulator` of its own behind a `RhombusCloud`, reached by its key.

Once the shards have spread, each replica is measured from inside for `--duration` seconds
(after `--warmup`), and the stand-ins count every call in that window by workspace: Slack calls
by the bot token they carry, Rhombus calls by the key that reached the organisation. A Slack call
naming a channel of another workspace than its token's, a Rhombus call with a key no
organisation has, and a Rhombus call asking an organisation for a clip of another are counted as
crossed (there should be none). Then, unless `--no-compare`, the same number of trackings in one
workspace (one token, one key: the single-workspace bot) on one replica, for the cost of a
workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bench.figures import busiest_window, machine, ms, say, table
from bench.growth import spread, workspaces
from bench.replicas import Replicas, deployment
from bench.stage import SIGNING_SECRET, store_trackings
from bot.config import Settings
from bot.distribution import BOT_SCOPES
from bot.installations import Installations
from bot.rhombus_keys import RhombusConnection, RhombusKeys
from bot.secret_box import SecretBox
from bot.shards import shard_of
from bot.store import Store
from standins.postgres import fresh_database, postgres_server
from standins.rhombus import RhombusSimulator
from standins.rhombus_cloud import RhombusCloud
from standins.slack import ChannelSpec, SlackSimulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from bench.bot_process import Measurement
    from bot.rhombus_keys import Region
    from standins.rhombus import Exchange
    from standins.slack import Call

SAMPLE_SECONDS = 0.5
CHANNELS_PER_WORKSPACE = 2
EU_EVERY = 5  # every fifth workspace's organisation is in the EU region
CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "bench-client-secret"  # noqa: S105  # the stand-in's, not a secret
PUBLIC_URL = "http://127.0.0.1:9"  # no install comes back in this benchmark
APP_ID = "A0BENCHAPP"
INSTALLER = "U0ADMIN"
SINGLE_CLIP_PATH = "/api/event/getClipWithProgress"
# Bodies of these Rhombus calls name the clip they ask for.
CLIP_PATHS = frozenset({SINGLE_CLIP_PATH, "/api/video/cancelSpliceV2"})


@dataclass(frozen=True)
class Tenant:
    """One installed workspace: its token, channels, and its Rhombus organisation and region."""

    team_id: str
    token: str
    channels: tuple[str, ...]
    org: RhombusSimulator
    region: Region


@dataclass
class Traffic:
    """Every call the bots made to the stand-ins, by workspace, and the calls that crossed over.

    Slack's calls are told apart by the workspace of the bot token they carry, Rhombus's by the
    organisation their key reached.
    """

    channel_teams: dict[str, str]
    org_clips: dict[str, frozenset[str]]  # team id -> the uuids of its organisation's clips
    slack: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slack_methods: list[tuple[float, str]] = field(default_factory=list)
    rhombus: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slack_errors: Counter[str] = field(default_factory=Counter)
    crossed_slack: list[tuple[float, str, str]] = field(default_factory=list)  # at, team, channel
    unknown_token: list[float] = field(default_factory=list)
    _asked: list[tuple[str, Exchange]] = field(default_factory=list)

    def on_slack(self, call: Call) -> None:
        """Note one Slack call: whose token, and whether its channel is that workspace's."""
        if call.team is None:
            self.unknown_token.append(call.time)
            return
        self.slack[call.team].append(call.time)
        self.slack_methods.append((call.time, call.method))
        if not call.ok and call.response is not None:
            self.slack_errors[f"{call.method}: {call.response.get('error')}"] += 1
        channel = call.args.get("channel")
        if isinstance(channel, str) and self.channel_teams.get(channel) not in {None, call.team}:
            self.crossed_slack.append((call.time, call.team, channel))

    def on_rhombus(self, team_id: str) -> Callable[[Exchange], None]:
        """What notes each call reaching `team_id`'s organisation."""

        def note(exchange: Exchange) -> None:
            self.rhombus[team_id].append(exchange.at)
            if exchange.path in CLIP_PATHS:
                self._asked.append((team_id, exchange))  # its body is read once answered

        return note

    def crossed_rhombus(self, start: float, end: float) -> int:
        """Calls in [start, end) asking an organisation for a clip that is another's."""
        return sum(
            1
            for team_id, exchange in self._asked
            if start <= exchange.at < end
            and isinstance(exchange.json, dict)
            and exchange.json.get("clipUuid") not in self.org_clips[team_id]
        )

    def asked_singly(self, start: float, end: float) -> int:
        """Calls in [start, end) that named one clip."""
        return sum(1 for _, exchange in self._asked if start <= exchange.at < end)


@dataclass(kw_only=True)
class Installed(Replicas):
    """Replicas of the bot installed into many workspaces, and the stand-ins they call."""

    slack: SlackSimulator
    regions: dict[str, RhombusCloud]
    tenants: list[Tenant]
    traffic: Traffic


def _tenants(
    teams: Sequence[str], clips: int, step_seconds: float, regions: dict[str, RhombusCloud]
) -> list[Tenant]:
    tenants = []
    for index, team_id in enumerate(teams):
        region: Region = "EU" if index % EU_EVERY == EU_EVERY - 1 else "US"
        org = RhombusSimulator.from_scenario(
            "bench",
            n_clips=clips,
            step_seconds=step_seconds,
            seed=index + 1,  # every organisation's clips have uuids of their own
            max_exchanges=10,
            api_key=f"bench-rhombus-key-{team_id.lower()}",
        )
        regions[region].add_org(org)
        channels = tuple(f"C0{team_id[1:7]}{n}" for n in range(CHANNELS_PER_WORKSPACE))
        tenants.append(Tenant(team_id, f"xoxb-bench-{team_id.lower()}", channels, org, region))
    return tenants


async def _install(database_url: str, keys: str, tenants: Sequence[Tenant], api_url: str) -> None:
    """Store each workspace's install and Rhombus key as the bot would, sealed with `keys`."""
    box = SecretBox.from_setting(keys)
    store = Store(database_url)
    await store.open()
    try:
        installations = Installations(
            engine=store.engine,
            box=box,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            client=AsyncWebClient(base_url=api_url),
        )
        await installations.open()
        rhombus_keys = RhombusKeys(store, box)
        now = time.time()
        for tenant in tenants:
            await installations.store.async_save(
                Installation(
                    app_id=APP_ID,
                    team_id=tenant.team_id,
                    team_name=tenant.team_id.lower(),
                    bot_token=tenant.token,
                    bot_id="B0BOT",
                    bot_user_id="U0BOT",
                    bot_scopes=list(BOT_SCOPES),
                    user_id=INSTALLER,
                    installed_at=now,
                )
            )
            await rhombus_keys.put(
                RhombusConnection(
                    team_id=tenant.team_id,
                    api_key=SecretStr(tenant.org.api_key),
                    region=tenant.region,
                    kind="api",
                    client_org=None,
                    connected_by=INSTALLER,
                    connected_at=now,
                )
            )
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def installed(
    *, teams: Sequence[str], clips: int, step_seconds: float, **settings: object
) -> AsyncIterator[Installed]:
    """PostgreSQL, the stand-ins, and `teams` installed with `clips` followed trackings each."""
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="bench-") as folder:
        url = await fresh_database(server)
        async_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
        regions = {"US": RhombusCloud("US"), "EU": RhombusCloud("EU")}
        tenants = _tenants(teams, clips, step_seconds, regions)
        slack = SlackSimulator(channels={})
        for tenant in tenants:
            specs = {channel: ChannelSpec(channel.lower()) for channel in tenant.channels}
            slack.add_workspace(tenant.team_id, tenant.team_id.lower(), specs)
            slack.add_bot_token(tenant.token, tenant.team_id)
        traffic = Traffic(
            channel_teams=dict(slack.channel_teams),
            org_clips={t.team_id: frozenset(t.org.clip_uuids) for t in tenants},
        )
        async with regions["US"], regions["EU"], slack:
            key = SecretBox.new_key()
            await _install(async_url, key, tenants, slack.api_url)
            for tenant in tenants:
                await store_trackings(
                    async_url,
                    tenant.org,
                    slack,
                    tenant.org.clip_uuids,
                    tenant.channels,
                    (tenant.team_id,),
                )
                tenant.org.on_request = traffic.on_rhombus(tenant.team_id)
            slack.on_call = traffic.on_slack
            run = Installed(
                database_url=url,
                folder=Path(folder),
                settings={
                    "slack_client_id": CLIENT_ID,
                    "slack_client_secret": CLIENT_SECRET,
                    "slack_signing_secret": SIGNING_SECRET,
                    "slack_api_url": slack.api_url,
                    "public_url": PUBLIC_URL,
                    "encryption_keys": key,
                    "rhombus_api_url": regions["US"].url,
                    "rhombus_media_url": regions["US"].url,
                    "rhombus_eu_api_url": regions["EU"].url,
                    "rhombus_eu_media_url": regions["EU"].url,
                    "deliver_video": False,
                    "deliver_thumbnail": False,
                    "database_url": url,
                    "host": "127.0.0.1",
                    "port": 0,
                    **settings,
                },
                slack=slack,
                regions=regions,
                tenants=tenants,
                traffic=traffic,
            )
            try:
                yield run
            finally:
                await run.stop()


# --- Measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What the replicas did while measured, and when that was."""

    start: float
    end: float
    shards: dict[int, frozenset[int]]
    measured: dict[int, Measurement]
    live: dict[int, float]
    ready_rss_kb: dict[int, int]

    @property
    def seconds(self) -> float:
        """How long it lasted."""
        return self.end - self.start


async def _measure(run: Replicas, count: int, args: argparse.Namespace) -> Window:
    """Start `count` replicas, wait for the shards to spread, and measure them."""
    done = asyncio.Event()
    for _ in range(count):
        await run.start()
    watching = asyncio.create_task(run.watch(SAMPLE_SECONDS, done))
    try:
        shards = await spread(run, count)
        await asyncio.sleep(args.warmup)
        for replica in run.replicas:
            await replica.bot.mark()
        start = time.monotonic()
        await asyncio.sleep(args.duration)
        measured = {replica.number: await replica.bot.report() for replica in run.replicas}
        end = time.monotonic()
        live = {n: seen.live for n, seen in run.samples[-1].replicas.items()}
    finally:
        done.set()
        await watching
    ready = {replica.number: replica.bot.ready.rss_kb for replica in run.replicas}
    return Window(start, end, shards, measured, live, ready)


def _between(times: Sequence[float], window: Window) -> list[float]:
    return [at for at in times if window.start <= at < window.end]


@dataclass(frozen=True)
class Result:
    """One number of replicas: a row per replica, the per-workspace spread, the isolation."""

    replicas: list[list[object]]
    spread: list[object]
    isolation: list[object]
    cpu_percent: float
    rss_mb: float


async def measure_installed(count: int, args: argparse.Namespace) -> Result:
    """`count` replicas of the installed bot over the workspaces; what each did."""
    teams = workspaces(args.workspaces)
    async with installed(
        teams=teams,
        clips=args.clips_per_workspace,
        step_seconds=args.step_seconds,
        poll_interval_seconds=args.poll_interval,
    ) as run:
        window = await _measure(run, count, args)
        traffic = run.traffic
        slack = {team: _between(traffic.slack[team], window) for team in teams}
        rhombus = {team: _between(traffic.rhombus[team], window) for team in teams}
        crossed_slack = len(_between([at for at, _, _ in traffic.crossed_slack], window))
        unknown = len(_between(traffic.unknown_token, window))
        crossed_rhombus = traffic.crossed_rhombus(window.start, window.end)
        singly = traffic.asked_singly(window.start, window.end)
        refused = sum(
            1
            for cloud in run.regions.values()
            for exchange in cloud.refused
            if window.start <= exchange.at < window.end
        )
        errors = dict(traffic.slack_errors)
        methods = Counter(m for at, m in traffic.slack_methods if window.start <= at < window.end)
    seconds = window.seconds
    per_workspace = args.clips_per_workspace
    rows = []
    for number, held in sorted(window.shards.items()):
        mine = [team for team in teams if shard_of(team) in held]
        m = window.measured[number]
        rows.append(
            [
                count,
                f"replica {number}",
                len(held),
                len(mine),
                f"{window.live.get(number, 0):.0f} (expected {len(mine) * per_workspace})",
                m.submitted,
                ms(m.late_p99),
                m.missed + m.skipped + m.errors,
                sum(m.warnings.values()),
                f"{sum(len(rhombus[t]) for t in mine) / seconds:.1f}",
                f"{sum(len(slack[t]) for t in mine) / seconds * 60:.0f}",
                f"{m.cpu_percent:.1f}",
                f"{window.ready_rss_kb[number] / 1024:.0f} / {m.rss_kb / 1024:.0f}",
            ]
        )
    per_org = [len(times) / seconds for times in rhombus.values()]
    busiest = [busiest_window(times, 1.0) for times in rhombus.values()]
    per_team = [len(times) / seconds * 60 for times in slack.values()]
    silent = sum(1 for times in rhombus.values() if not times)
    cpu = sum(m.cpu_percent for m in window.measured.values())
    rss = sum(m.rss_kb for m in window.measured.values()) / 1024
    spread_row: list[object] = [
        count,
        f"{min(per_org):.2f} / {statistics.median(per_org):.2f} / {max(per_org):.2f}",
        f"{max(busiest)} (budget {args.rhombus_budget:g}/s)",
        f"{args.workspaces - silent}/{args.workspaces}",
        f"{min(per_team):.0f} / {statistics.median(per_team):.0f} / {max(per_team):.0f}",
        f"{sum(1 for times in slack.values() if times)}/{args.workspaces}",
    ]
    isolation: list[object] = [
        count,
        ", ".join(f"{n} {method}" for method, n in methods.most_common()) or "none",
        crossed_slack,
        unknown,
        ", ".join(f"{name} x{n}" for name, n in sorted(errors.items())) or "none",
        sum(len(times) for times in rhombus.values()),
        refused,
        f"{crossed_rhombus} (of {singly} naming a clip)",
    ]
    return Result(rows, spread_row, isolation, cpu, rss)


async def measure_one_workspace(args: argparse.Namespace) -> tuple[list[object], Measurement]:
    """The same number of trackings in one workspace, on one replica: its row and measurement."""
    clips = args.workspaces * args.clips_per_workspace
    async with deployment(
        clips=clips,
        teams=workspaces(1),
        step_seconds=args.step_seconds,
        poll_interval_seconds=args.poll_interval,
    ) as run:
        window = await _measure(run, 1, args)
        rhombus = len(run.requests.bot_between(window.start, window.end))
        slack = sum(1 for c in run.slack.calls if window.start <= c.time < window.end)
    m = window.measured[1]
    row: list[object] = [
        "1, one workspace",
        "replica 1",
        len(window.shards[1]),
        1,
        f"{window.live.get(1, 0):.0f} (expected {clips})",
        m.submitted,
        ms(m.late_p99),
        m.missed + m.skipped + m.errors,
        sum(m.warnings.values()),
        f"{rhombus / window.seconds:.1f}",
        f"{slack / window.seconds * 60:.0f}",
        f"{m.cpu_percent:.1f}",
        f"{window.ready_rss_kb[1] / 1024:.0f} / {m.rss_kb / 1024:.0f}",
    ]
    return row, m


async def run(args: argparse.Namespace) -> None:
    """Measure each number of replicas in turn, then one workspace; print the tables."""
    results = [await measure_installed(count, args) for count in args.replicas]
    single = None if args.no_compare else await measure_one_workspace(args)
    clips = args.workspaces * args.clips_per_workspace
    eu = args.workspaces // EU_EVERY
    say(f"## Many workspaces: {args.workspaces} installed workspaces over replicas ({machine()})")
    say()
    say(
        f"{args.workspaces} workspaces installed (tokens and Rhombus keys sealed in PostgreSQL), "
        f"each its own Rhombus organisation ({args.workspaces - eu} US, {eu} EU) with "
        f"{args.clips_per_workspace} followed clips: {clips} trackings. Bot defaults but "
        f"POLL_INTERVAL_SECONDS {args.poll_interval:g}; each replica measured for "
        f"{args.duration:g} s after {args.warmup:g} s. CPU: % of one core."
    )
    say()
    say(
        table(
            [
                "replicas",
                "replica",
                "shards",
                "workspaces",
                "trackings followed",
                "polls run",
                "poll late p99 ms",
                "polls dropped or failed",
                "warnings logged",
                "Rhombus calls/s",
                "Slack calls/min",
                "CPU %",
                "RSS MB ready / end",
            ],
            [row for result in results for row in result.replicas]
            + ([] if single is None else [single[0]]),
        )
    )
    say()
    say("Per workspace (min / median / max over the workspaces):")
    say()
    say(
        table(
            [
                "replicas",
                "Rhombus calls/s per organisation",
                "most in any 1 s, one organisation",
                "organisations called",
                "Slack calls/min per workspace",
                "workspaces calling Slack",
            ],
            [result.spread for result in results],
        )
    )
    say()
    say("Isolation (every call in the window, by the token or key it carried):")
    say()
    say(
        table(
            [
                "replicas",
                "Slack calls, by method",
                "naming another workspace's channel",
                "unknown token",
                "Slack errors",
                "Rhombus calls",
                "key no organisation has",
                "asking for another organisation's clip",
            ],
            [result.isolation for result in results],
        )
    )
    say()
    rows = []
    for count, result in zip(args.replicas, results, strict=True):
        rows.append(
            [
                f"{args.workspaces} workspaces, {count} replica(s)",
                f"{result.cpu_percent:.1f}",
                f"{result.rss_mb:.0f}",
                f"{result.cpu_percent / args.workspaces:.2f}",
                f"{result.rss_mb / args.workspaces:.1f}",
                "-"
                if single is None or count != 1
                else f"{(result.cpu_percent - single[1].cpu_percent) / args.workspaces:+.3f}",
                "-"
                if single is None or count != 1
                else f"{(result.rss_mb * 1024 - single[1].rss_kb) / args.workspaces:+.0f}",
            ]
        )
    if single is not None:
        measurement = single[1]
        rows.append(
            [
                "1 workspace, 1 replica",
                f"{measurement.cpu_percent:.1f}",
                f"{measurement.rss_kb / 1024:.0f}",
                "-",
                "-",
                "-",
                "-",
            ]
        )
    say(f"Cost per workspace ({clips} trackings in each case; totals over the replicas):")
    say()
    say(
        table(
            [
                "deployment",
                "CPU %",
                "RSS MB",
                "CPU % per workspace",
                "RSS MB per workspace",
                "CPU % per workspace above 1 workspace",
                "RSS KB per workspace above 1 workspace",
            ],
            rows,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.workspaces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workspaces", type=int, default=50, help="installed workspaces (50)")
    parser.add_argument(
        "--clips-per-workspace", type=int, default=20, help="followed clips in each (20)"
    )
    parser.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 3], help="replica counts (1 3)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before (15)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=600.0, help="length of each clip stage, s (600)"
    )
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the same trackings in one workspace",
    )
    args = parser.parse_args(argv)
    # Each organisation's budget: RHOMBUS_CALLS_PER_SECOND, left at its default.
    args.rhombus_budget = Settings.model_fields["rhombus_calls_per_second"].default
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
