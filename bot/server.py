"""The HTTP server: `/slack/events` (acknowledged before its listener runs) and `/healthz`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import (
    is_block_actions,
    is_event,
    is_message_shortcut,
    is_slash_command,
)
from slack_sdk.signature import SignatureVerifier

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_bolt.async_app import AsyncApp

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# Prometheus' text format (https://prometheus.io/docs/instrumenting/exposition_formats/).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Slack's requests are small; anything bigger is not from Slack.
MAX_BODY_BYTES = 1024 * 1024


class Server:
    """Serves Slack's requests to the Bolt app and the health check, on one port.

    `signing_secret` None means Socket Mode: `/slack/events` is not served. An app installed
    into many workspaces also serves Bolt's install page and OAuth redirect.
    """

    def __init__(
        self,
        app: AsyncApp,
        *,
        signing_secret: str | None,
        health: Callable[[], Awaitable[tuple[bool, dict[str, object]]]],
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self._app = app
        self._verifier = None if signing_secret is None else SignatureVerifier(signing_secret)
        self._health_check = health
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._dispatches: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on `host`:`port` (0: any free port); the port it listens on."""
        web_app = web.Application(client_max_size=MAX_BODY_BYTES)
        web_app.router.add_get(HEALTH_PATH, self._health)
        if self._metrics is not None:
            web_app.router.add_get(METRICS_PATH, self._scrape)
        if self._verifier is not None:
            web_app.router.add_post(SLACK_EVENTS_PATH, self._slack_events)
        if (flow := self._app.oauth_flow) is not None:  # installing into many workspaces
            web_app.router.add_get(flow.install_path, self._install)
            web_app.router.add_get(flow.redirect_uri_path, self._oauth_redirect)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = _bound_port(self._runner) or port
        return self.port

    async def finish(self, seconds: float) -> None:
        """Refuse new Slack requests (503); give those acknowledged `seconds`, cancel the rest."""
        self._stopping = True
        if not self._dispatches:
            return
        _, pending = await asyncio.wait(set(self._dispatches), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("shutting down: cancelled %d Slack request(s) under way", len(pending))
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _request: web.Request) -> web.Response:
        ok, checks = await self._health_check()
        return web.json_response(
            {"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503
        )

    async def _scrape(self, _request: web.Request) -> web.Response:
        assert self._metrics is not None  # noqa: S101  # the route exists only then
        return web.Response(body=self._metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _install(self, request: web.Request) -> web.Response:
        """The "Add to Slack" page, which starts Slack's OAuth flow."""
        assert self._app.oauth_flow is not None  # noqa: S101  # the route exists only then
        bolt_response = await self._app.oauth_flow.handle_installation(
            await to_bolt_request(request)
        )
        return await to_aiohttp_response(bolt_response)

    async def _oauth_redirect(self, request: web.Request) -> web.Response:
        """Where Slack sends the installer back: the install is finished and stored."""
        assert self._app.oauth_flow is not None  # noqa: S101  # the route exists only then
        bolt_response = await self._app.oauth_flow.handle_callback(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

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
            bolt_response = await self._app.async_dispatch(bolt_request)
            return await to_aiohttp_response(bolt_response)
        # Slack waits at most 3 s for these and shows nothing of an empty answer: answer first,
        # run the listener after. Only signed requests get that far; Bolt checks them again.
        if self._verifier is None or not _signed(self._verifier, bolt_request):
            return _invalid_request()
        if self._stopping:
            return web.json_response({"error": "shutting down"}, status=503)
        task = asyncio.create_task(self._dispatch(bolt_request))
        self._dispatches.add(task)
        task.add_done_callback(self._dispatches.discard)
        return web.Response()

    async def _dispatch(self, bolt_request: AsyncBoltRequest) -> None:
        """Run the listeners of a request Slack already has its answer to."""
        try:
            await self._app.async_dispatch(bolt_request)
        except Exception:
            logger.exception("a Slack request failed after it was acknowledged")


def _acknowledged_without_body(body: dict[str, Any]) -> bool:
    """Whether the bot answers it with an empty 200: commands, message shortcuts, clicks, events.

    Not a modal's submission (its answer can carry `response_action: errors`) nor Slack's URL
    check (its answer carries the challenge): Bolt answers those itself.
    """
    return (
        is_slash_command(body)
        or is_message_shortcut(body)
        or is_block_actions(body)
        or is_event(body)
    )


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
