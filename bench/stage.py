"""What the bot runs against in a benchmark: both simulators, its settings, stored trackings."""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bench.bot_process import BotProcess
from bot.clips import Clip
from bot.store import Store, Tracking, TrackingState
from standins.rhombus import RhombusSimulator
from standins.slack import ChannelSpec, Message, SlackSimulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from standins.rhombus import Exchange

SIGNING_SECRET = "bench-signing-secret-0123456789"  # noqa: S105  # the fake's, not a secret
TEAM_ID = "T0SIM"
REQUESTER = "U0ALICE"
# The bot's Rhombus client says who it is; anything else calling the simulator is the benchmark.
BOT_USER_AGENT_PREFIX = "rhombus-clip-bot/"
# Seeded status messages are dated an hour back, so their ts never meets one the fake hands out.
_SEEDED_TS_AGE = 3600


def channels(count: int) -> dict[str, ChannelSpec]:
    """`count` public channels the bot is a member of, C0BENCH000 and on."""
    return {f"C0BENCH{n:03d}": ChannelSpec(f"bench-{n:03d}") for n in range(count)}


def bot_settings(
    rhombus: RhombusSimulator, slack: SlackSimulator, database: Path, **overrides: object
) -> dict[str, object]:
    """The bot's settings (its defaults, unless overridden) against the two simulators."""
    return {
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "rhombus_api_key": rhombus.api_key,
        "rhombus_api_url": rhombus.url,
        "rhombus_media_url": rhombus.url,
        # These benchmarks measure following; bench.delivery measures the video on top of it.
        "deliver_video": False,
        "deliver_thumbnail": False,
        "database_url": f"sqlite:///{database}",
        "host": "127.0.0.1",
        "port": 0,
        **overrides,
    }


@dataclass
class RhombusRequests:
    """When each request reached the Rhombus simulator, the bot's apart from the benchmark's.

    Set as the simulator's `on_request`; keeps one time and path per request, so the simulator
    can be told to keep only a few whole exchanges.
    """

    bot: list[tuple[float, str]] = field(default_factory=list)
    others: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, exchange: Exchange) -> None:
        """Note one request."""
        agent = exchange.headers.get("user-agent", "")
        mine = agent.startswith(BOT_USER_AGENT_PREFIX)
        (self.bot if mine else self.others).append((exchange.at, exchange.path))

    def bot_between(self, start: float, end: float, path: str | None = None) -> list[float]:
        """The times of the bot's requests (to `path`, or any) in [start, end)."""
        return [at for at, p in self.bot if start <= at < end and path in {None, p}]


async def store_trackings(  # noqa: PLR0913, PLR0917
    database: Path | str,
    rhombus: RhombusSimulator,
    slack: SlackSimulator,
    clip_ids: Sequence[str],
    channel_ids: Sequence[str],
    teams: Sequence[str] = (TEAM_ID,),
) -> None:
    """Store one followed tracking per clip, as if `/clip` had asked for each, and its message.

    `database`: a SQLite file, or an async SQLAlchemy URL (PostgreSQL). The trackings take
    turns among `teams` (one workspace by default).

    The rows are what the bot itself stores once a status message is posted (state FOLLOWING,
    the clip as Rhombus reports it now); their status messages are put straight into the fake
    Slack, so the bot's edits find them. Only the last shown fingerprint is left out, so the
    bot's first poll of each edits its message (as after an upgrade that changes the layout).
    """
    url = database if isinstance(database, str) else f"sqlite+aiosqlite:///{database}"
    store = Store(url)
    await store.open()  # creates the table, as the bot does
    await store.close()
    now = time.time()
    rows = []
    for index, clip_id in enumerate(clip_ids):
        channel = channel_ids[index % len(channel_ids)]
        ts = f"{int(now) - _SEEDED_TS_AGE}.{index:06d}"
        slack.messages[channel, ts] = Message(
            channel=channel, ts=ts, user=slack.bot_user_id, text="Clip", bot_id=slack.bot_id
        )
        clip = Clip.model_validate(rhombus.clip_json(clip_id))
        rows.append(
            {
                "id": Tracking.new_id(),
                "team_id": teams[index % len(teams)],
                "channel_id": channel,
                "message_ts": ts,
                "thread_ts": None,
                "clip_id": clip_id,
                "requester_id": REQUESTER,
                "state": TrackingState.FOLLOWING.value,
                "clip": clip.model_dump(mode="json", by_alias=True, exclude_none=True),
                "percent": clip.percent,
                "final_reply_sent": False,
                "started_at": now,
                "changed_at": now,
                "progress_at": now,
                "reached_at": now,
            }
        )
    if not rows:
        return
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Tracking), rows)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Following:
    """The bot, in its own process, following every clip of a `bench` organisation."""

    rhombus: RhombusSimulator
    slack: SlackSimulator
    requests: RhombusRequests
    bot: BotProcess


@contextlib.asynccontextmanager
async def following(
    clips: int, *, step_seconds: float, profile_path: Path | None = None, **settings: object
) -> AsyncIterator[Following]:
    """Store a followed tracking for each of `clips` clips of the `bench` scenario, start the bot.

    `settings` override the bot's defaults; `profile_path` profiles the bot (see `BotProcess`).
    The simulators keep only a few whole exchanges (their history would otherwise grow by a page
    of clips a call); `requests` times every call.
    """
    rhombus = RhombusSimulator.from_scenario(
        "bench", n_clips=clips, step_seconds=step_seconds, seed=1, max_exchanges=10
    )
    requests = RhombusRequests()
    rhombus.on_request = requests
    channel_map = channels(20)
    slack = SlackSimulator(channels=channel_map)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        async with rhombus, slack:
            database = Path(folder) / "bot.db"
            await store_trackings(database, rhombus, slack, rhombus.clip_uuids, list(channel_map))
            bot = await BotProcess.start(
                bot_settings(rhombus, slack, database, **settings),
                Path(folder) / "bot.log",
                profile_path,
            )
            try:
                yield Following(rhombus, slack, requests, bot)
            finally:
                await bot.stop()
