"""The running bot: built in order, serving Slack and `/healthz`, torn down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import (
    is_block_actions,
    is_message_shortcut,
    is_slash_command,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Policy, build_app, register_listeners
from bot.feed import ClipFeed
from bot.rhombus import RhombusClient
from bot.store import Store
from bot.tracker import Tracker, TrackerSettings

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.config import Settings

logger = logging.getLogger(__name__)

# Allocations between two young-generation garbage collections (Python's default is 700).
GC_THRESHOLD = 10_000

SLACK_EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass
class Bot:
    """Every long-lived part of the running bot."""

    settings: Settings
    store: Store
    rhombus: RhombusClient
    slack: AsyncWebClient
    scheduler: AsyncIOScheduler
    tracker: Tracker
    app: AsyncApp
    verifier: SignatureVerifier | None = None
    runner: web.AppRunner | None = None
    socket_mode: AsyncSocketModeHandler | None = None
    port: int = 0
    _stopped: bool = field(default=False, repr=False)
    _dispatches: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @classmethod
    async def start(cls, settings: Settings) -> Self:
        """Open the database, start the scheduler, serve Slack and resume every open tracking."""
        store = Store(settings.async_database_url)
        await store.open()
        rhombus = RhombusClient.from_settings(settings)
        slack = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            timeout=10,
        )
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()
        feed = ClipFeed(rhombus, max_age=settings.poll_interval_seconds * 0.9)
        tracker = Tracker(
            store=store,
            rhombus=rhombus,
            feed=feed,
            slack=slack,
            scheduler=scheduler,
            settings=TrackerSettings(
                poll_interval=settings.poll_interval_seconds,
                edits_per_minute=settings.slack_edits_per_minute,
                max_poll_interval=settings.max_poll_interval_seconds,
                give_up_after=settings.give_up_minutes * 60,
                console_url=settings.console_url,
            ),
        )
        feed.on_final = tracker.poll_now
        signing_secret = (
            None
            if settings.socket_mode or settings.slack_signing_secret is None
            else settings.slack_signing_secret.get_secret_value()
        )
        app = build_app(slack, signing_secret)
        register_listeners(
            app,
            tracker,
            rhombus,
            Policy(
                max_clips=settings.max_clips_per_command,
                post_restricted_clips=settings.post_restricted_clips,
                allowed_channels=settings.allowed_channel_ids,
                allowed_users=settings.allowed_user_ids,
            ),
        )
        bot = cls(
            settings=settings,
            store=store,
            rhombus=rhombus,
            slack=slack,
            scheduler=scheduler,
            tracker=tracker,
            app=app,
            verifier=None if signing_secret is None else SignatureVerifier(signing_secret),
        )
        runner = bot.runner = web.AppRunner(bot._web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        bot.port = _bound_port(runner) or settings.port
        if settings.socket_mode and settings.slack_app_token is not None:
            bot.socket_mode = AsyncSocketModeHandler(
                app, settings.slack_app_token.get_secret_value()
            )
            await bot.socket_mode.connect_async()  # type: ignore[no-untyped-call]
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        await tracker.resume(settle=_freeze_start_up)
        logger.info(
            "bot ready: %s, health on http://%s:%d%s",
            "Socket Mode" if settings.socket_mode else f"HTTP mode on {SLACK_EVENTS_PATH}",
            settings.host,
            bot.port,
            HEALTH_PATH,
        )
        return bot

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
        await self._finish_dispatches(grace)
        await self.tracker.drain(max(0.0, deadline - asyncio.get_running_loop().time()))
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.runner is not None:
            await self.runner.cleanup()
        await self.rhombus.aclose()
        await self.store.close()
        logger.info("stopped")

    async def healthy(self) -> tuple[bool, dict[str, bool]]:
        """Whether the scheduler runs and the database answers."""
        checks = {
            "scheduler": self.scheduler.running and not self._stopped,
            "database": await self.store.ping(),
        }
        return all(checks.values()), checks

    def _web_app(self) -> web.Application:
        web_app = web.Application(client_max_size=1024 * 1024)
        web_app.router.add_get(HEALTH_PATH, self._health)
        if not self.settings.socket_mode:
            web_app.router.add_post(SLACK_EVENTS_PATH, self._slack_events)
        return web_app

    async def _health(self, _request: web.Request) -> web.Response:
        ok, checks = await self.healthy()
        return web.json_response(
            {"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503
        )

    async def _slack_events(self, request: web.Request) -> web.Response:
        # Slack always sends UTF-8; anything else cannot carry a valid signature and gets 401.
        body = (await request.read()).decode("utf-8", errors="replace")
        bolt_request = _bolt_request(body, request)
        if bolt_request is None:
            # Bolt reads the body before it checks the signature; what it cannot read never
            # came from Slack.
            return _invalid_request()
        if not _acknowledged_without_body(bolt_request.body):
            if not _timestamp_readable(bolt_request):
                return _invalid_request()  # Bolt would fail on it with a 500
            bolt_response = await self.app.async_dispatch(bolt_request)
            return await to_aiohttp_response(bolt_response)
        # Slack waits at most 3 s for these and shows nothing of an empty answer: answer first,
        # run the listener after. Only signed requests get that far; Bolt checks them again.
        if self.verifier is None or not _signed(self.verifier, bolt_request):
            return _invalid_request()
        if self._stopped:
            return web.json_response({"error": "shutting down"}, status=503)
        task = asyncio.create_task(self._dispatch(bolt_request))
        self._dispatches.add(task)
        task.add_done_callback(self._dispatches.discard)
        return web.Response()

    async def _dispatch(self, bolt_request: AsyncBoltRequest) -> None:
        """Run the listeners of a request Slack already has its answer to."""
        try:
            await self.app.async_dispatch(bolt_request)
        except Exception:
            logger.exception("a Slack request failed after it was acknowledged")

    async def _finish_dispatches(self, seconds: float) -> None:
        """Wait up to `seconds` for acknowledged requests to be handled; cancel the rest."""
        if not self._dispatches:
            return
        _, pending = await asyncio.wait(set(self._dispatches), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("shutting down: cancelled %d Slack request(s) under way", len(pending))
            await asyncio.wait(pending)


def _freeze_start_up() -> None:
    """Keep what start-up loaded out of every later garbage collection.

    With thousands of followed clips a full collection walks millions of objects and holds up
    every poll for hundreds of milliseconds; what start-up loaded lives as long as the process.
    (A higher first threshold, set before loading, makes full collections rarer too; garbage
    without cycles is freed at once either way.)
    """
    gc.collect()
    gc.freeze()


def _acknowledged_without_body(body: dict[str, Any]) -> bool:
    """Whether the bot answers it with an empty 200: commands, message shortcuts, clicks."""
    return is_slash_command(body) or is_message_shortcut(body) or is_block_actions(body)


def _signed(verifier: SignatureVerifier, bolt_request: AsyncBoltRequest) -> bool:
    """Whether the request carries Slack's signature, read from the same headers Bolt reads."""
    headers = bolt_request.headers
    timestamp = headers.get("x-slack-request-timestamp", ["0"])[0]
    signature = headers.get("x-slack-signature", [""])[0]
    try:
        return verifier.is_valid(bolt_request.raw_body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        return False


def _timestamp_readable(bolt_request: AsyncBoltRequest) -> bool:
    """Whether the request's timestamp, if it has one, is a number, as Slack always sends it."""
    timestamp = bolt_request.headers.get("x-slack-request-timestamp", ["0"])[0]
    try:
        int(timestamp)
    except ValueError:
        return False
    return True


def _invalid_request() -> web.Response:
    return web.json_response({"error": "invalid request"}, status=401)


def _bolt_request(body: str, request: web.Request) -> AsyncBoltRequest | None:
    """The request for Bolt, or None when the body is not something Slack sends."""
    parsed = _slack_body(body, request.content_type)
    if parsed is None:
        return None
    try:
        bolt_request = AsyncBoltRequest(
            body=body, query=request.query_string, headers=dict(request.headers)
        )
        if bolt_request.body != parsed:
            # Bolt reads any form body with "payload" in it as interactivity, so `/clip payload`
            # or a link containing the word would be lost: use the right parse.
            bolt_request.body = parsed
            bolt_request.context = build_async_context(AsyncBoltContext({}), parsed)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    return bolt_request


def _slack_body(body: str, content_type: str) -> dict[str, Any] | None:
    """The request body as Slack means it: form fields, an interactivity payload, or JSON."""
    try:
        if content_type == "application/json" or body.startswith("{"):
            parsed: object = json.loads(body)
        else:
            fields = dict(parse_qsl(body, keep_blank_values=True))
            parsed = json.loads(fields["payload"]) if "payload" in fields else fields
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


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
