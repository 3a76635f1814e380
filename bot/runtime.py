"""The running bot: every part built in order, and torn down in reverse on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_app, register_listeners
from bot.delivery import Deliveries, DeliverySettings
from bot.delivery_rows import DeliveryRows
from bot.directory import Directory
from bot.distribution import Distribution
from bot.feed import ClipFeed
from bot.file_lock import SqliteFileLock
from bot.handover import Handover
from bot.home import Home, HomeSettings
from bot.installed import read_workspace_notice
from bot.made import MadeClips
from bot.making import Making
from bot.metrics import MeteredWebClient, Metrics
from bot.policy import Policy
from bot.progress import Pacing
from bot.rhombus import RhombusClient
from bot.server import HEALTH_PATH, SLACK_EVENTS_PATH, Server
from bot.shards import ShardHolder, shard_of
from bot.slack_messages import SlackMessages
from bot.store import Store
from bot.thumbnail import Thumbnails
from bot.tracker import Tracker, TrackerSettings
from bot.unfurls import Unfurls
from bot.workspaces import OneWorkspace, Organisation, Workspace, Workspaces

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.config import Settings
    from bot.status_message import MadeFromSlack

logger = logging.getLogger(__name__)

# Allocations between two young-generation garbage collections (Python's default is 700).
GC_THRESHOLD = 10_000
SHUTDOWN_GRACE_SECONDS = 5.0
# How often installed workspaces are read again (tokens rotate 2 hours before they expire).
WORKSPACES_REREAD_SECONDS = 10 * 60.0


@dataclass
class Bot:
    """Every long-lived part of the running bot."""

    settings: Settings
    store: Store
    workspaces: Workspaces
    slack: AsyncWebClient
    scheduler: AsyncIOScheduler
    tracker: Tracker
    app: AsyncApp
    uploads: httpx.AsyncClient
    making: Making | None = None
    deliveries: Deliveries | None = None
    server: Server = field(init=False)
    home: Home | None = None
    unfurls: Unfurls | None = None
    socket_mode: AsyncSocketModeHandler | None = None
    file_lock: SqliteFileLock | None = None
    shards: ShardHolder | None = None
    distribution: Distribution | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        """The port `/healthz` (and in HTTP mode `/slack/events`) are served on."""
        return self.server.port

    @classmethod
    async def start(cls, settings: Settings) -> Self:
        """Open the database, start the scheduler, serve Slack and resume every open tracking."""
        store = Store(settings.async_database_url)
        await store.open()
        file_lock = None if store.sqlite_file is None else SqliteFileLock.acquire(store.sqlite_file)
        metrics = Metrics()
        try:
            workspaces, slack, distribution = await _workspaces(settings, store, metrics)
        except BaseException:
            await store.close()
            if file_lock is not None:
                file_lock.release()
            raise
        shards = ShardHolder.for_database(settings.async_database_url)
        scheduler = AsyncIOScheduler(timezone="UTC")
        metrics.watch_scheduler(scheduler)
        scheduler.start()
        uploads = httpx.AsyncClient(trust_env=False)  # the upload URL is its own credential
        messages = SlackMessages(workspaces.slack, edits_per_minute=settings.slack_edits_per_minute)
        deliveries = _deliveries(settings, store, workspaces, uploads, messages)
        made_shown: dict[str, MadeFromSlack] = {}
        tracker = Tracker(
            store=store,
            workspaces=workspaces,
            messages=messages,
            scheduler=scheduler,
            settings=TrackerSettings(
                pacing=Pacing(
                    interval=settings.poll_interval_seconds,
                    max_interval=settings.max_poll_interval_seconds,
                    give_up_after=settings.give_up_minutes * 60,
                ),
                console_url=settings.console_url,
            ),
            deliveries=deliveries,
            made=made_shown,
            holder=shards,
        )
        workspaces.when_final(tracker.poll_now)
        signing_secret = (
            None
            if settings.socket_mode or settings.slack_signing_secret is None
            else settings.slack_signing_secret.get_secret_value()
        )
        app = build_app(
            slack,
            signing_secret,
            oauth=None if distribution is None else distribution.oauth_settings(),
            authorize=None if distribution is None else distribution.installations.authorize,
        )
        unfurls = Unfurls(
            workspaces=workspaces,
            store=store,
            messages=messages,
            scheduler=scheduler,
            console_url=settings.console_url,
            interval=settings.poll_interval_seconds,
            give_up_after=settings.give_up_minutes * 60,
            offer_clips=True,
            holder=shards,
        )
        policy = Policy(
            max_clips=settings.max_clips_per_command,
            post_restricted_clips=settings.post_restricted_clips,
            allowed_channels=settings.allowed_channel_ids,
            allowed_users=settings.allowed_user_ids,
            creators=settings.clip_creators,
        )
        making = Making(
            tracker=tracker,
            workspaces=workspaces,
            policy=policy,
            made_clips=MadeClips(store),
            shown=made_shown,
            visibility=settings.clip_visibility,
        )
        home = register_listeners(
            app,
            tracker,
            workspaces,
            policy,
            store=store,
            home_settings=HomeSettings(
                console_url=settings.console_url,
                post_restricted_clips=settings.post_restricted_clips,
                min_interval=settings.home_refresh_seconds,
            ),
            unfurls=unfurls,
            making=making,
            home_top=None if distribution is None else distribution.home_top,
        )
        if distribution is not None:
            distribution.attach(app, tracker=tracker, home=home)
        bot = cls(
            settings=settings,
            store=store,
            workspaces=workspaces,
            slack=slack,
            scheduler=scheduler,
            tracker=tracker,
            app=app,
            home=home,
            unfurls=unfurls,
            deliveries=deliveries,
            uploads=uploads,
            making=making,
            file_lock=file_lock,
            shards=shards,
            distribution=distribution,
        )
        metrics.watch_state(live=lambda: tracker.live_count, edits_waiting=messages.waiting_edits)
        if shards is not None:
            metrics.watch_shards(shards)
        bot.server = Server(
            app, signing_secret=signing_secret, health=bot.healthy, metrics=metrics.exposition
        )
        await bot.server.start(settings.host, settings.port)
        if settings.socket_mode and settings.slack_app_token is not None:
            bot.socket_mode = AsyncSocketModeHandler(
                app, settings.slack_app_token.get_secret_value()
            )
            await bot.socket_mode.connect_async()  # type: ignore[no-untyped-call]
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        await making.load()  # before any status message of a made clip is rendered
        await bot._take_work(metrics)
        logger.info(
            "bot ready: %s, health on http://%s:%d%s",
            "Socket Mode" if settings.socket_mode else f"HTTP mode on {SLACK_EVENTS_PATH}",
            settings.host,
            bot.port,
            HEALTH_PATH,
        )
        return bot

    async def _take_work(self, metrics: Metrics) -> None:
        """Resume what the database holds: all of it, or that of the shards this replica holds."""
        assert self.making is not None  # noqa: S101  # built by start
        assert self.unfurls is not None  # noqa: S101
        making, unfurls, deliveries, shards = (
            self.making,
            self.unfurls,
            self.deliveries,
            self.shards,
        )
        if shards is None:
            await self.tracker.resume(settle=_freeze_start_up)
            await making.resume()  # after: a message the tracker recovered is not posted again
            await unfurls.resume()
            if deliveries is not None:
                await deliveries.resume()
        else:  # each replica takes the work of the shards it holds, as it gains them
            handover = Handover(
                self.tracker,
                self.store,
                shards,
                interval=self.settings.poll_interval_seconds,
                unfurls=unfurls,
                deliveries=deliveries,
                known=making.recall,
                retried=making.retried,
                settle_made=making.resume,
            )
            await _hold_shards(shards, handover, metrics, self.distribution)
            _freeze_start_up()
        if self.distribution is not None:
            # Tokens about to expire are refreshed, and news a replica missed is read.
            self.scheduler.add_job(
                self.distribution.refresh, IntervalTrigger(seconds=WORKSPACES_REREAD_SECONDS)
            )

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop taking requests, give work under way `grace` seconds, then close in reverse.

        Acknowledged commands and clicks still being handled finish first; what is left of them
        when the grace runs out is cancelled. Edits under way get the rest of the grace.
        """
        if self._stopped:
            return
        self._stopped = True
        logger.info("shutting down")
        deadline = asyncio.get_running_loop().time() + grace
        if self.socket_mode is not None:
            with contextlib.suppress(Exception):
                await self.socket_mode.close_async()  # type: ignore[no-untyped-call]
        if self.scheduler.running:
            self.scheduler.pause()
        if self.shards is not None:
            await self.shards.stop_taking()  # a draining replica takes over nothing
        if self.unfurls is not None:
            self.unfurls.close()
        await self.server.finish(grace)
        left = functools.partial(_left, deadline)
        if self.making is not None:
            await self.making.close(left())
        if self.home is not None:
            await self.home.close(left())
        if self.distribution is not None:
            await self.distribution.close(left())
        await self.tracker.drain(left())
        await self._close_parts()

    async def _close_parts(self) -> None:
        """Close what the bot holds, once its work has ended, in reverse order of start."""
        if self.deliveries is not None:
            await self.deliveries.close()  # each resumes from its row at the next start
        await self.uploads.aclose()
        if self.shards is not None:
            await self.shards.close()  # another replica takes them at its next probe
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.server.close()
        await self.workspaces.aclose()
        await self.store.close()
        if self.file_lock is not None:
            self.file_lock.release()
        logger.info("stopped")

    async def healthy(self) -> tuple[bool, dict[str, object]]:
        """Whether the scheduler runs and the database answers; the shards held, with replicas."""
        checks = {
            "scheduler": self.scheduler.running and not self._stopped,
            "database": await self.store.ping(),
        }
        shards = {} if self.shards is None else {"shards": sorted(self.shards.held)}
        return all(checks.values()), {**checks, **shards}


def _deliveries(
    settings: Settings,
    store: Store,
    workspaces: Workspaces,
    uploads: httpx.AsyncClient,
    messages: SlackMessages,
) -> Deliveries | None:
    """What puts finished clips' videos and thumbnails in Slack, if either is wanted."""
    if not (settings.deliver_video or settings.deliver_thumbnail):
        return None
    return Deliveries(
        rows=DeliveryRows(store),
        workspaces=workspaces,
        uploads=uploads,
        thumbnails=Thumbnails(workspaces=workspaces, uploads=uploads, edits=messages.edits)
        if settings.deliver_thumbnail
        else None,
        settings=DeliverySettings(
            max_bytes=int(settings.video_max_mb * 1_000_000),
            concurrency=settings.delivery_concurrency,
            post_restricted_clips=settings.post_restricted_clips,
            video=settings.deliver_video,
        ),
    )


async def _workspaces(
    settings: Settings, store: Store, metrics: Metrics
) -> tuple[Workspaces, AsyncWebClient, Distribution | None]:
    """The workspaces served, the Slack client Bolt starts from, and distribution if it is on."""
    if not settings.distributed:
        one = _one_workspace(settings, metrics)
        return one, one.only.slack, None
    distribution = await Distribution.open(settings, store, metrics)
    # Bolt gives each listener a client with its workspace's token; this one has none.
    slack = MeteredWebClient(metrics, base_url=settings.slack_api_url, timeout=10)
    return distribution.workspaces, slack, distribution


def _one_workspace(settings: Settings, metrics: Metrics) -> OneWorkspace:
    """The single workspace of SLACK_BOT_TOKEN, with the organisation of RHOMBUS_API_KEY."""
    assert settings.slack_bot_token is not None  # noqa: S101  # required with one workspace
    rhombus = RhombusClient.from_settings(settings)
    metrics.watch_rhombus(rhombus)
    slack = MeteredWebClient(
        metrics,
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
    )
    return OneWorkspace(
        Workspace(
            team_id="",
            slack=slack,
            organisation=Organisation(
                client=rhombus,
                feed=ClipFeed(rhombus, max_age=settings.poll_interval_seconds * 0.9),
                directory=Directory(rhombus),  # for making clips and for unfurls
                console_url=settings.console_url,
                media_url=settings.media_url,
            ),
        )
    )


def _left(deadline: float) -> float:
    """Seconds left until `deadline` on the loop's clock (0 once it has passed)."""
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def _hold_shards(
    shards: ShardHolder,
    handover: Handover,
    metrics: Metrics,
    distribution: Distribution | None,
) -> None:
    """Follow the work of the shards this replica holds, as it gains and loses them."""

    async def heard(payload: str) -> None:
        team_id = read_workspace_notice(payload)
        if team_id is None or distribution is None:
            await handover.heed(payload)
        else:
            await distribution.heard(team_id)

    async def gained(held: frozenset[int]) -> None:
        taken = time.monotonic()
        await handover.take(lambda team_id: shard_of(team_id) in held)
        metrics.handover_seconds.observe(time.monotonic() - taken)

    async def lost(held: frozenset[int], orderly: bool) -> None:  # noqa: FBT001
        await handover.let_go(lambda team_id: shard_of(team_id) in held, orderly=orderly)

    async def rescan() -> None:
        await handover.take(shards.holds, again=True)

    await shards.start(gained=gained, lost=lost, heard=heard, rescan=rescan)
    if distribution is not None:
        distribution.tell_replicas()


def _freeze_start_up() -> None:
    """Keep what start-up loaded out of every later garbage collection.

    With thousands of followed clips a full collection walks millions of objects and holds up
    every poll for hundreds of milliseconds; what start-up loaded lives as long as the process.
    (A higher first threshold, set before loading, makes full collections rarer too; garbage
    without cycles is freed at once either way.)
    """
    gc.collect()
    gc.freeze()


async def serve(settings: Settings) -> None:
    """Run the bot until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bot = await Bot.start(settings)
    try:
        await stop.wait()
    finally:
        await bot.stop()
