"""A fake Slack on 127.0.0.1: the Web API methods the bot calls, response_url, and Socket Mode."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, Self, TypeAlias

from aiohttp import WSCloseCode, WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from standins.slack_views import Views

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

MAX_TEXT_LENGTH: Final = 4000
MAX_BLOCKS: Final = 50
RESPONSE_URL_USES: Final = 5
DEFAULT_RETRY_AFTER: Final = 1
RATE_LIMIT_WINDOW_SECONDS: Final = 60.0  # Slack's tiers count calls per minute
DEFAULT_SCOPES: Final = frozenset(
    {
        "commands",
        "links:read",
        "links:write",
        "chat:write",
        "chat:write.public",
        "channels:join",
        "channels:history",
        "groups:history",
        "files:write",
        "files:read",
        "users:read",
    }
)

_APP_ID: Final = "A0SIM"
_SUMMARY_CALLS: Final = 10
_HTML_ERROR_PAGE: Final = (
    "<!DOCTYPE html><html><head><title>Slack</title></head>"
    "<body><h1>Slack is having trouble</h1><p>Please try again.</p></body></html>"
)

Json: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class ChannelSpec:
    """A conversation in the fake workspace, as the bot sees it."""

    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False


DEFAULT_CHANNELS: Final[Mapping[str, ChannelSpec]] = MappingProxyType(
    {
        "C0GENERAL": ChannelSpec("general"),
        "C0RANDOM": ChannelSpec("random", is_member=False),
        "G0PRIVATE": ChannelSpec("private", is_private=True, is_member=False),
        "C0ARCHIVED": ChannelSpec("archived", is_archived=True),
    }
)


@dataclass(frozen=True)
class Workspace:
    """A workspace the app is in: its id, its name and its address (`{domain}.slack.com`)."""

    team_id: str
    domain: str
    enterprise_id: str | None = None  # the Enterprise Grid organisation it belongs to

    @property
    def name(self) -> str:
        """The workspace's name, as auth.test and oauth.v2.access give it."""
        return self.domain.capitalize()


@dataclass(frozen=True)
class Call:
    """One Web API call as the fake received and answered it."""

    method: str
    args: Json
    token: str | None
    status: int
    response: Json | None  # None when the body was not JSON (an HTML error page)
    time: float  # time.monotonic(), the clock asyncio's loop uses
    team: str | None = None  # the workspace the token belongs to, when it is a known bot token

    @property
    def ok(self) -> bool:
        """Whether Slack answered `ok: true`."""
        return self.response is not None and self.response.get("ok") is True

    @property
    def error(self) -> str | None:
        """Slack's error code, if the call failed with one."""
        if self.response is None:
            return None
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass(frozen=True)
class Revision:
    """One state of a message: what a post or an edit left on screen."""

    method: str  # chat.postMessage, chat.update, chat.delete, response_url; user, deleted
    text: str
    blocks: list[Json]
    time: float


@dataclass
class Message:
    """A message in a channel, with every state it has been in."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Json] = field(default_factory=list)
    bot_id: str | None = None
    thread_ts: str | None = None
    thread_parent_missing: bool = False  # posted with a thread_ts no message has
    reply_broadcast: bool = False
    metadata: Json | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    edited_ts: str | None = None  # Slack shows "(edited)" after an update that sends no blocks
    deleted: bool = False
    files: list[str] = field(default_factory=list)  # ids of the files shared with it
    revisions: list[Revision] = field(default_factory=list)


@dataclass
class UploadedFile:
    """A file uploaded with files.getUploadURLExternal, its bytes and where it is shared."""

    id: str
    filename: str
    length: int  # as announced to getUploadURLExternal
    received: int | None = None  # bytes that reached the upload URL (None: nothing yet)
    sha256: str | None = None
    data: bytes | None = None  # kept when small, for tests to compare
    title: str | None = None
    completed: bool = False
    shares: dict[str, list[str]] = field(default_factory=dict)  # channel -> message ts


@dataclass(frozen=True)
class Ephemeral:
    """A message only some people see: chat.postEphemeral, or a post to a response_url."""

    source: Literal["chat.postEphemeral", "response_url"]
    text: str
    blocks: list[Json]
    channel: str | None = None
    user: str | None = None
    # chat.postEphemeral: the ts it answered; response_url: the ts of the message it belongs to.
    message_ts: str | None = None
    response_url_id: str | None = None
    response_type: str = "ephemeral"
    replace_original: bool = False
    delete_original: bool = False
    thread_ts: str | None = None
    time: float = 0.0


@dataclass
class _Failure:
    method: str
    error: str | None
    status: int
    retry_after: int | None
    remaining: int  # -1: until clear_failures()
    delay: float
    channel: str | None
    ts: str | None
    probability: float = 1.0

    def matches(self, method: str, args: Json) -> bool:
        if method != self.method:
            return False
        # Most methods name the channel `channel`; the file upload's completion, `channel_id`.
        if self.channel is not None and self.channel not in {
            args.get("channel"),
            args.get("channel_id"),
        }:
            return False
        return self.ts is None or self.ts in {args.get("ts"), args.get("message_ts")}


class _SlackError(Exception):
    """An `ok: false` answer, raised inside a method and turned into its JSON body."""

    def __init__(self, error: str, **extra: Any) -> None:  # noqa: ANN401 - Slack's extra fields vary
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> Json:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass(frozen=True)
class _Method:
    handler: Callable[[Json], Json]
    scope: str | None = None  # the bot scope the method needs
    app_level: bool = False  # called with the app-level (xapp-) token, not the bot token
    credentials: bool = False  # called with the app's client id and secret, not a token


@dataclass(frozen=True)
class _Answer:
    body: Json | None  # None: an HTML error page instead of JSON
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if self.body is None:
            return web.Response(
                status=self.status,
                headers=self.headers,
                text=_HTML_ERROR_PAGE,
                content_type="text/html",
            )
        return web.json_response(self.body, status=self.status, headers=self.headers)


class SlackSimulator:
    """Slack's Web API, response_url and Socket Mode, faithful enough to test a bot against."""

    def __init__(  # noqa: PLR0913 - one keyword per workspace fact a test may want to change
        self,
        *,
        bot_token: str = "xoxb-sim",  # noqa: S107 - the fake's own tokens, not secrets
        app_token: str = "xapp-sim",  # noqa: S107 - likewise
        team_id: str = "T0SIM",
        team_domain: str = "sim",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        channels: Mapping[str, ChannelSpec] | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        seed: int | None = None,
        rate_limits: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Describe the workspace; nothing listens until `start()`.

        `seed` seeds the random generator that failures with a `probability` draw from.
        `rate_limits` (off by default) caps methods at that many calls a minute in this
        workspace, e.g. `{"chat.update": 50}` for Tier 3: over it, a call answers 429 with
        `Retry-After`, as Slack does. The minute slides, on `clock`; refused calls do not count.
        """
        if rate_limits is not None and any(limit < 1 for limit in rate_limits.values()):
            raise ValueError("a rate limit allows at least one call a minute")
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.channels: dict[str, ChannelSpec] = dict(
            DEFAULT_CHANNELS if channels is None else channels
        )
        # Workspaces other than this one (add_workspace), and the channels that are theirs:
        # any channel not listed here is this workspace's.
        self.workspaces: dict[str, Workspace] = {team_id: Workspace(team_id, team_domain)}
        self.channel_teams: dict[str, str] = {}
        self.scopes = frozenset(scopes)
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[Ephemeral] = []
        self.socket_messages: list[Json] = []  # everything the app sent over Socket Mode
        self.socket_connections_total = 0  # every connection ever accepted, open or closed
        self.on_call: Callable[[Call], None] | None = None
        # Modals and people: views.open with trigger ids, users.info (standins/slack_views.py).
        self.views = Views()
        self._methods: dict[str, _Method] = {
            "auth.test": _Method(self._auth_test),
            "apps.connections.open": _Method(self._apps_connections_open, app_level=True),
            "chat.postMessage": _Method(self._chat_post_message, "chat:write"),
            "chat.update": _Method(self._chat_update, "chat:write"),
            "chat.postEphemeral": _Method(self._chat_post_ephemeral, "chat:write"),
            "chat.getPermalink": _Method(self._chat_get_permalink),
            "chat.delete": _Method(self._chat_delete, "chat:write"),
            "conversations.join": _Method(self._conversations_join, "channels:join"),
            "conversations.history": _Method(self._conversations_history),
            "conversations.replies": _Method(self._conversations_replies),
            "files.getUploadURLExternal": _Method(self._files_get_upload_url, "files:write"),
            "files.completeUploadExternal": _Method(self._files_complete_upload, "files:write"),
            "files.info": _Method(self._files_info, "files:read"),
            "users.info": _Method(self.views.users_info, "users:read"),
        }
        self.files: dict[str, UploadedFile] = {}
        self.keep_file_bytes = 32 * 1024 * 1024  # files up to this size keep their bytes
        self._failures: list[_Failure] = []
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self.rate_limits: dict[str, int] = dict(rate_limits or {})
        self._clock = clock
        self._answered: dict[str, deque[float]] = {}  # per limited method: when calls passed
        # Every bot token Slack would accept, and the workspace each acts in; revoked ones answer
        # token_revoked. More are added by `add_bot_token` (another install, or one per replica).
        self.bot_tokens: dict[str, str] = {bot_token: team_id}
        self._revoked_tokens: set[str] = set()
        self._last_ts_us = 0
        self._response_url_uses: dict[str, int] = {}
        self._response_url_targets: dict[str, tuple[str, str | None]] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[Json]] = {}
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        # Home tabs, modals and unfurls: a module of their own, built on this one's helpers.
        from standins.slack_surfaces import Surfaces  # noqa: PLC0415

        self.surfaces = Surfaces(self)
        self._methods |= self.surfaces.methods()
        # Installing with OAuth and token rotation (standins/slack_oauth.py).
        from standins.slack_oauth import SlackOAuth  # noqa: PLC0415

        self.oauth = SlackOAuth(self, clock=clock)
        self._methods |= self.oauth.methods()
        self._caller_team: str | None = None  # the workspace of the call being answered

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port) and return the base URL."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/api/{method}", self._handle_api),
                web.post("/api/{method}", self._handle_api),
                web.post("/response/{response_id}", self._handle_response_url),
                web.post("/upload/v1/{file_id}", self._handle_upload),
                web.get("/socket", self._handle_socket),
                *self.oauth.routes(),
            ]
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        self._runner = runner
        self._changed = asyncio.Condition()
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Close every Socket Mode connection and stop serving."""
        for future in self._pending_acks.values():
            future.cancel()
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        """Start serving on a free port of 127.0.0.1."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving."""
        await self.stop()

    @property
    def base_url(self) -> str:
        """Where the fake listens, e.g. http://127.0.0.1:41234."""
        if self._base_url is None:
            raise RuntimeError("the Slack simulator is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """The Web API base URL, for AsyncWebClient(base_url=...)."""
        return f"{self.base_url}/api/"

    def response_url(
        self, response_id: str | None = None, *, channel: str | None = None, ts: str | None = None
    ) -> str:
        """A response_url served by the fake (a fresh id unless one is given).

        With `channel`, posts to it are recorded in that channel; with `channel` and `ts` it
        belongs to that message too, so `replace_original` / `delete_original` act on it.
        """
        response_id = response_id or secrets.token_hex(8)
        if channel is not None:
            self._response_url_targets[response_id] = (channel, ts)
        return f"{self.base_url}/response/{response_id}"

    # -- what tests look at and provoke ---------------------------------------------------------

    def thread_replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread, oldest first, without the parent."""
        return sorted(
            (
                message
                for message in self.messages.values()
                if message.channel == channel
                and message.thread_ts == thread_ts
                and message.ts != thread_ts
                and not message.deleted
            ),
            key=lambda message: float(message.ts),
        )

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one Web API method, in order."""
        return [call for call in self.calls if call.method == method]

    def post_user_message(
        self, channel: str, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None
    ) -> Message:
        """Put a message written by a person (not the bot) into a channel."""
        message = Message(
            channel=channel, ts=self._next_ts(), user=user, text=text, thread_ts=thread_ts
        )
        message.revisions.append(Revision("user", text, [], time.monotonic()))
        self.messages[channel, message.ts] = message
        return message

    def fail(  # noqa: PLR0913 - each knob is one way Slack misbehaves
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        delay: float = 0.0,
        channel: str | None = None,
        ts: str | None = None,
        probability: float = 1.0,
    ) -> None:
        """Make the next `times` calls of `method` (-1: all until clear_failures()) misbehave.

        - `error="ratelimited"` (the default when nothing else is asked for) answers HTTP 429 with
          a `Retry-After` header, as Slack does; so does any `status=429`.
        - another `error` answers `{"ok": false, "error": error}` with HTTP `status` (200 for
          Slack's usual errors, 5xx for `internal_error`, `service_unavailable`, ...).
        - `status` >= 500 without `error` answers an HTML error page, as Slack's edge does.
        - `delay` holds the answer back that many seconds; with no `error` the call then
          succeeds normally (a slow Slack).
        - `channel` / `ts` limit the failure to calls about that channel / message.
        - `probability` below 1 spoils each matching call only with that chance, drawn from the
          fake's seeded random generator; `times` then counts the calls actually spoiled, and a
          call spared by one failure may still be spoiled by the next one armed.
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability is between 0 and 1")
        if error is None and status == 200 and delay == 0:
            error = "ratelimited"
        self._failures.append(
            _Failure(method, error, status, retry_after, times, delay, channel, ts, probability)
        )

    def clear_failures(self) -> None:
        """Let every method behave again."""
        self._failures.clear()

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message as a person would, so later edits get message_not_found."""
        message = self.messages[channel, ts]
        message.deleted = True
        message.revisions.append(Revision("deleted", "", [], time.monotonic()))

    def archive_channel(self, channel: str) -> None:
        """Archive a channel: posts get is_archived, edits get is_inactive."""
        self.channels[channel] = replace(self.channels[channel], is_archived=True)

    def revoke_token(self, token: str | None = None) -> None:
        """Revoke a bot token (default: the first one): every call with it gets token_revoked."""
        self._revoked_tokens.add(token or self.bot_token)

    def add_bot_token(self, token: str, team_id: str | None = None) -> None:
        """Accept another bot token, acting in `team_id` (default: this workspace)."""
        team_id = team_id or self.team_id
        self.workspaces.setdefault(team_id, Workspace(team_id, team_id.lower()))
        self.bot_tokens[token] = team_id

    def add_workspace(
        self,
        team_id: str,
        domain: str,
        channels: Mapping[str, ChannelSpec] | None = None,
        *,
        enterprise_id: str | None = None,
    ) -> Workspace:
        """Another workspace the app can be installed in, with its own channels.

        A token of one workspace finds no channel of another (channel_not_found), as in Slack.
        `enterprise_id`: the Enterprise Grid organisation the workspace belongs to.
        """
        workspace = self.workspaces[team_id] = Workspace(team_id, domain, enterprise_id)
        for channel_id, spec in (channels or {}).items():
            self.channels[channel_id] = spec
            self.channel_teams[channel_id] = team_id
        return workspace

    async def wait_for(
        self,
        predicate: Callable[[SlackSimulator], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - tests wait with a bounded default, as the API says
    ) -> None:
        """Wait until predicate(self) holds, checking after everything the fake records."""
        changed = self._condition()
        try:
            async with asyncio.timeout(timeout), changed:
                await changed.wait_for(lambda: predicate(self))
        except TimeoutError:
            raise TimeoutError(
                f"Slack simulator: condition not met within {timeout} s. {self.summary()}"
            ) from None

    def summary(self) -> str:
        """The last few calls, one a line, for failure messages."""
        recent = self.calls[-_SUMMARY_CALLS:]
        if not recent:
            return "No Web API calls were made."
        lines = [
            f"  {call.method} -> {call.status} {call.error or 'ok'} "
            f"{json.dumps(call.args, default=str)[:160]}"
            for call in recent
        ]
        return f"Last {len(recent)} of {len(self.calls)} calls:\n" + "\n".join(lines)

    # -- Socket Mode -----------------------------------------------------------------------------

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections are open."""
        return sum(1 for socket in self._sockets if not socket.closed)

    async def wait_for_socket_connection(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - as wait_for
    ) -> None:
        """Wait until the app has connected over Socket Mode."""
        await self.wait_for(lambda sim: sim.socket_connections > 0, timeout)

    async def send_socket_request(
        self,
        envelope_type: str,
        payload: Json,
        timeout: float = 3.0,  # noqa: ASYNC109 - Slack's own 3 s deadline for an acknowledgement
        *,
        retry_attempt: int = 0,
    ) -> Json:
        """Push an envelope to the app and return its acknowledgement (with any payload)."""
        socket = self._newest_socket()
        envelope_id = str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": _accepts_response_payload(envelope_type, payload),
        }
        if envelope_type == "events_api":
            envelope |= {
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        acked: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = acked
        try:
            await socket.send_json(envelope)
            async with asyncio.timeout(timeout):
                return await acked
        except TimeoutError:
            # Slack would show the user operation_timeout here.
            raise TimeoutError(
                f"the app did not acknowledge the {envelope_type} envelope within {timeout} s"
            ) from None
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def send_socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every connected app to reconnect, as Slack does every few hours."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sim"}}
        for socket in self._sockets:
            if not socket.closed:
                await socket.send_json(message)

    def _newest_socket(self) -> web.WebSocketResponse:
        open_sockets = [socket for socket in self._sockets if not socket.closed]
        if not open_sockets:
            raise RuntimeError("no app is connected over Socket Mode")
        return open_sockets[-1]

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        self._tickets.discard(ticket)  # a ticket opens one connection
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        self.socket_connections_total += 1
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": self.socket_connections,
                "debug_info": {
                    "host": "applink-sim",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": _APP_ID},
            }
        )
        await self._notify()
        try:
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    self._receive_socket_message(frame.data)
                    await self._notify()
        finally:
            self._sockets.remove(socket)
            await self._notify()
        return socket

    def _receive_socket_message(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        self.socket_messages.append(message)
        acked = self._pending_acks.get(str(message.get("envelope_id")))
        if acked is not None and not acked.done():
            acked.set_result(message)

    # -- Web API plumbing ------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args, token, malformed = await _read_args(request)
        failure = self._take_failure(method, args)
        if failure is not None and failure.delay > 0:
            await asyncio.sleep(failure.delay)
        if failure is not None and (failure.error is not None or failure.status != 200):
            answer = _failure_answer(failure)
        elif (retry_after := self._throttle(method)) is not None:
            answer = _rate_limited_answer("ratelimited", retry_after)
        elif malformed:
            answer = _Answer({"ok": False, "error": "invalid_json"})
        else:
            answer = self._answer(method, args, token)
        call = Call(
            method,
            args,
            token,
            answer.status,
            answer.body,
            time.monotonic(),
            self.bot_tokens.get(token or ""),
        )
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        await self._notify()
        return answer.response()

    def _answer(self, method_name: str, args: Json, token: str | None) -> _Answer:
        method = self._methods.get(method_name)
        if method is None:
            return _Answer({"ok": False, "error": "unknown_method", "req_method": method_name})
        headers = {}
        self._caller_team = self.bot_tokens.get(token or "")
        try:
            if not method.credentials:
                self._authenticate(token, app_level=method.app_level)
            if not method.app_level:
                headers["x-oauth-scopes"] = ",".join(sorted(self.scopes))
            if method.scope is not None:
                headers["x-accepted-oauth-scopes"] = method.scope
                self._require_scope(method.scope)
            body = method.handler(args)
        except _SlackError as error:
            body = error.body()
        return _Answer(body, headers=headers)

    def _authenticate(self, token: str | None, *, app_level: bool) -> None:
        if not token:
            raise _SlackError("not_authed")
        if token in self.bot_tokens:
            if token in self._revoked_tokens:
                raise _SlackError("token_revoked")
            if self.oauth.expired(token):
                raise _SlackError("token_expired")
            if app_level:
                raise _SlackError("not_allowed_token_type")
        elif token == self.app_token:
            if not app_level:
                raise _SlackError("not_allowed_token_type")
        else:
            raise _SlackError("invalid_auth")

    def _require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise _SlackError("missing_scope", needed=scope, provided=",".join(sorted(self.scopes)))

    def _throttle(self, method: str) -> int | None:
        """Count a call against its method's limit; seconds to wait when it is over the limit."""
        limit = self.rate_limits.get(method)
        if limit is None:
            return None
        now = self._clock()
        answered = self._answered.setdefault(method, deque())
        while answered and answered[0] <= now - RATE_LIMIT_WINDOW_SECONDS:
            answered.popleft()
        if len(answered) >= limit:
            return max(1, math.ceil(answered[0] + RATE_LIMIT_WINDOW_SECONDS - now))
        answered.append(now)
        return None

    def _take_failure(self, method: str, args: Json) -> _Failure | None:
        for failure in self._failures:
            if failure.matches(method, args):
                if failure.probability < 1.0 and self._rng.random() >= failure.probability:
                    continue
                if failure.remaining > 0:
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    def _next_ts(self) -> str:
        # Slack's ts is the post time in microseconds, unique within a channel.
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _channel(self, args: Json) -> tuple[str, ChannelSpec]:
        requested = _required(args, "channel")
        # A token sees the channels of its own workspace only.
        team_id = self._caller_team or self.team_id
        visible = {
            channel_id: spec
            for channel_id, spec in self.channels.items()
            if self.channel_teams.get(channel_id, self.team_id) == team_id
        }
        by_name = {spec.name: channel_id for channel_id, spec in visible.items()}
        channel_id = (
            requested if requested in visible else by_name.get(requested.removeprefix("#"), "")
        )
        spec = visible.get(channel_id)
        if spec is None:
            raise _SlackError("channel_not_found")
        # Slack hides a private channel from a bot that is not in it: it answers
        # channel_not_found, not not_in_channel.
        if spec.is_private and not spec.is_member:
            raise _SlackError("channel_not_found")
        return channel_id, spec

    def _postable_channel(self, args: Json) -> str:
        channel_id, spec = self._channel(args)
        if spec.is_archived:
            raise _SlackError("is_archived")
        # chat:write.public lets a bot post in public channels it has not joined;
        # without it Slack answers not_in_channel.
        if not spec.is_member and "chat:write.public" not in self.scopes:
            raise _SlackError("not_in_channel")
        return channel_id

    def _message(self, channel_id: str, ts: str) -> Message:
        message = self.messages.get((channel_id, ts))
        if message is None or message.deleted:
            raise _SlackError("message_not_found")
        return message

    def _message_json(self, message: Message) -> Json:
        body: Json = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "team": self.channel_teams.get(message.channel, self.team_id),
        }
        if message.bot_id is not None:
            body |= {"bot_id": message.bot_id, "app_id": _APP_ID}
        if message.blocks:
            body["blocks"] = message.blocks
        if message.thread_ts is not None:
            body["thread_ts"] = message.thread_ts
        if message.metadata is not None:
            body["metadata"] = message.metadata
        if message.edited_ts is not None:
            body["edited"] = {"user": message.user, "ts": message.edited_ts}
        return body

    # -- Web API methods -------------------------------------------------------------------------

    def _auth_test(self, _args: Json) -> Json:
        # The workspace of the token used: each install's token acts in its own.
        workspace = self.workspaces[self._caller_team or self.team_id]
        grid = {} if workspace.enterprise_id is None else {"enterprise_id": workspace.enterprise_id}
        return grid | {
            "ok": True,
            "url": f"https://{workspace.domain}.slack.com/",
            "team": workspace.name,
            "user": "clipbot",
            "team_id": workspace.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, _args: Json) -> Json:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket?ticket={ticket}&app_id={_APP_ID}"}

    def _chat_post_message(self, args: Json) -> Json:
        channel_id = self._postable_channel(args)
        text, blocks = _content(args)
        thread_ts = _optional_str(args, "thread_ts")
        message = Message(
            channel=channel_id,
            ts=self._next_ts(),
            user=self.bot_user_id,
            text=text or "",
            blocks=blocks or [],
            bot_id=self.bot_id,
            thread_ts=thread_ts,
            # Slack accepts a thread_ts that matches no message; the fake notes it.
            thread_parent_missing=thread_ts is not None
            and (channel_id, thread_ts) not in self.messages,
            reply_broadcast=_flag(args.get("reply_broadcast")) or False,
            metadata=_metadata(args.get("metadata")),
            unfurl_links=_flag(args.get("unfurl_links")),
            unfurl_media=_flag(args.get("unfurl_media")),
        )
        message.revisions.append(
            Revision("chat.postMessage", message.text, message.blocks, time.monotonic())
        )
        self.messages[channel_id, message.ts] = message
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _chat_update(self, args: Json) -> Json:
        channel_id, spec = self._channel(args)
        ts = _required(args, "ts")
        if spec.is_archived:
            raise _SlackError("is_inactive")
        message = self._message(channel_id, ts)
        if message.user != self.bot_user_id:
            raise _SlackError("cant_update_message")
        text, blocks = _content(args)
        if "metadata" in args:
            # An empty object removes the metadata; leaving it out keeps it.
            message.metadata = _metadata(args["metadata"]) or None
        if blocks is None:
            # Text without blocks replaces the blocks with nothing; Slack then marks it edited.
            message.blocks = []
            message.edited_ts = self._next_ts()
        else:
            message.blocks = blocks
        message.text = text or ""
        message.revisions.append(
            Revision("chat.update", message.text, message.blocks, time.monotonic())
        )
        return {
            "ok": True,
            "channel": channel_id,
            "ts": ts,
            "text": message.text,
            "message": self._message_json(message),
        }

    def _chat_post_ephemeral(self, args: Json) -> Json:
        channel_id = self._postable_channel(args)
        user = _required(args, "user")
        text, blocks = _content(args)
        message_ts = self._next_ts()
        self.ephemerals.append(
            Ephemeral(
                source="chat.postEphemeral",
                text=text or "",
                blocks=blocks or [],
                channel=channel_id,
                user=user,
                message_ts=message_ts,
                thread_ts=_optional_str(args, "thread_ts"),
                time=time.monotonic(),
            )
        )
        return {"ok": True, "message_ts": message_ts}

    def _chat_get_permalink(self, args: Json) -> Json:
        channel_id, _spec = self._channel(args)
        message = self._message(channel_id, _required(args, "message_ts"))
        permalink = (
            f"https://{self.team_domain}.slack.com/archives/{channel_id}/"
            f"p{message.ts.replace('.', '')}"
        )
        if message.thread_ts is not None and message.thread_ts != message.ts:
            permalink += f"?thread_ts={message.thread_ts}&cid={channel_id}"
        return {"ok": True, "channel": channel_id, "permalink": permalink}

    def _chat_delete(self, args: Json) -> Json:
        channel_id, _spec = self._channel(args)
        message = self._message(channel_id, _required(args, "ts"))
        if message.user != self.bot_user_id:
            raise _SlackError("cant_delete_message")
        message.deleted = True
        message.revisions.append(Revision("chat.delete", "", [], time.monotonic()))
        return {"ok": True, "channel": channel_id, "ts": message.ts}

    def _conversations_join(self, args: Json) -> Json:
        channel_id, spec = self._channel(args)
        if spec.is_private:
            raise _SlackError("method_not_supported_for_channel_type")
        if spec.is_archived:
            raise _SlackError("is_archived")
        already_member = spec.is_member
        spec = self.channels[channel_id] = replace(spec, is_member=True)
        body: Json = {
            "ok": True,
            "channel": {
                "id": channel_id,
                "name": spec.name,
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
            },
        }
        if already_member:
            body |= {
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        return body

    def _conversations_history(self, args: Json) -> Json:
        """A channel's top-level messages, newest first, within oldest/latest."""
        channel_id = self._readable_channel(args)
        return self._page_of_messages(
            args,
            [
                m
                for m in self.messages.values()
                if m.channel == channel_id and m.thread_ts in {None, m.ts}
            ],
            newest_first=True,
        )

    def _conversations_replies(self, args: Json) -> Json:
        """A thread: its parent, then its replies, oldest first."""
        channel_id = self._readable_channel(args)
        parent = self._message(channel_id, _required(args, "ts"))
        thread = [
            m
            for m in self.messages.values()
            if m.channel == channel_id and parent.ts in {m.ts, m.thread_ts}
        ]
        return self._page_of_messages(args, thread, newest_first=False)

    def _readable_channel(self, args: Json) -> str:
        channel_id, spec = self._channel(args)
        self._require_scope("groups:history" if spec.is_private else "channels:history")
        # A bot reads only the conversations it is a member of.
        if not spec.is_member:
            raise _SlackError("not_in_channel")
        return channel_id

    def _page_of_messages(self, args: Json, found: list[Message], *, newest_first: bool) -> Json:
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = str(args.get("inclusive", "")).lower() in {"1", "true"}
        with_metadata = str(args.get("include_all_metadata", "")).lower() in {"1", "true"}
        limit = max(1, min(1000, int(args.get("limit") or 100)))

        def in_range(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        chosen = sorted(
            (m for m in found if not m.deleted and in_range(float(m.ts))),
            key=lambda m: float(m.ts),
            reverse=newest_first,
        )
        messages = []
        for message in chosen[:limit]:
            body = self._message_json(message)
            if not with_metadata:
                body.pop("metadata", None)
            messages.append(body)
        return {"ok": True, "messages": messages, "has_more": len(chosen) > limit}

    # -- files (https://docs.slack.dev/messaging/working-with-files) ----------------------------

    def _files_get_upload_url(self, args: Json) -> Json:
        filename = _required(args, "filename")
        try:
            length = int(_required(args, "length"))
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if length <= 0:
            raise _SlackError("missing_argument")  # "Typically only occurs when length is 0"
        file_id = "F" + secrets.token_hex(5).upper()
        self.files[file_id] = UploadedFile(file_id, filename, length)
        return {
            "ok": True,
            "upload_url": f"{self.base_url}/upload/v1/{file_id}",
            "file_id": file_id,
        }

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: raw bytes (or multipart, not used here); 200 once every byte came."""
        file = self.files.get(request.match_info["file_id"])
        if file is None or file.completed:
            return web.Response(status=404, text="Not Found")
        digest = hashlib.sha256()
        kept = bytearray() if file.length <= self.keep_file_bytes else None
        received = 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            received += len(chunk)
            digest.update(chunk)
            if kept is not None and received <= file.length:
                kept.extend(chunk)
        file.received, file.sha256 = received, digest.hexdigest()
        file.data = bytes(kept) if kept is not None else None
        await self._notify()
        if received != file.length:
            return web.Response(status=400, text="length does not match")
        return web.Response(status=200, text=f"OK - {received}")

    def _files_complete_upload(self, args: Json) -> Json:
        try:
            listed = json.loads(_required(args, "files"))
        except ValueError:
            raise _SlackError("invalid_arguments") from None
        if not isinstance(listed, list) or not listed:
            raise _SlackError("invalid_arguments")
        found = []
        for item in listed:
            file = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            # "This method can only be called once": a completed file is not found again.
            if file is None or file.completed or file.received != file.length:
                raise _SlackError("file_not_found")
            found.append((file, item.get("title")))
        channel_id = _optional_str(args, "channel_id")
        message = None
        if channel_id is not None:
            channel_id, spec = self._channel({"channel": channel_id})
            if spec.is_archived:
                raise _SlackError("is_archived")
            # Sharing needs real membership: chat:write.public does not help here.
            if not spec.is_member:
                raise _SlackError("not_in_channel")
            thread_ts = _optional_str(args, "thread_ts")
            comment = _optional_str(args, "initial_comment") or ""
            message = Message(
                channel=channel_id,
                ts=self._next_ts(),
                user=self.bot_user_id,
                text=comment,
                bot_id=self.bot_id,
                thread_ts=thread_ts,
                thread_parent_missing=thread_ts is not None
                and (channel_id, thread_ts) not in self.messages,
                files=[file.id for file, _ in found],
            )
            message.revisions.append(
                Revision("files.completeUploadExternal", comment, [], time.monotonic())
            )
            self.messages[channel_id, message.ts] = message
        for file, title in found:
            file.completed = True
            file.title = str(title) if title else file.filename
            if message is not None:
                file.shares.setdefault(message.channel, []).append(message.ts)
        return {"ok": True, "files": [self._file_json(file) for file, _ in found]}

    def _files_info(self, args: Json) -> Json:
        file = self.files.get(_required(args, "file"))
        if file is None or not file.completed:
            raise _SlackError("file_not_found")
        return {"ok": True, "file": self._file_json(file)}

    def _file_json(self, file: UploadedFile) -> Json:
        public = {
            channel: [{"ts": ts} for ts in tss]
            for channel, tss in file.shares.items()
            if not self.channels[channel].is_private
        }
        private = {
            channel: [{"ts": ts} for ts in tss]
            for channel, tss in file.shares.items()
            if self.channels[channel].is_private
        }
        body: Json = {
            "id": file.id,
            "name": file.filename,
            "title": file.title,
            "size": file.length,
        }
        shares = {key: value for key, value in (("public", public), ("private", private)) if value}
        if shares:
            body["shares"] = shares
        return body

    def shared_files(self, channel: str, thread_ts: str) -> list[UploadedFile]:
        """The files shared into a thread, oldest first."""
        return [
            self.files[file_id]
            for message in self.thread_replies(channel, thread_ts)
            for file_id in message.files
        ]

    # -- response_url ----------------------------------------------------------------------------

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        response_id = request.match_info["response_id"]
        try:
            response = self._respond(response_id, await request.json())
        except ValueError:
            response = web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        await self._notify()
        return response

    def _respond(self, response_id: str, body: object) -> web.Response:
        if self._response_url_uses.get(response_id, 0) >= RESPONSE_URL_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        delete_original = _flag(body.get("delete_original")) or False
        try:
            text, blocks = _content(body, allow_empty=delete_original)
        except _SlackError as error:
            return web.json_response(error.body(), status=400)
        self._response_url_uses[response_id] = self._response_url_uses.get(response_id, 0) + 1
        channel, ts = self._response_url_targets.get(response_id, (None, None))
        ephemeral = Ephemeral(
            source="response_url",
            channel=channel,
            message_ts=ts,
            text=text or "",
            blocks=blocks or [],
            response_url_id=response_id,
            response_type=str(body.get("response_type") or "ephemeral"),
            replace_original=_flag(body.get("replace_original")) or False,
            delete_original=delete_original,
            thread_ts=_optional_str(body, "thread_ts"),
            time=time.monotonic(),
        )
        self.ephemerals.append(ephemeral)
        self._apply_to_original(ephemeral)
        return web.json_response({"ok": True})

    def _apply_to_original(self, ephemeral: Ephemeral) -> None:
        if ephemeral.channel is None or ephemeral.message_ts is None:
            return
        message = self.messages.get((ephemeral.channel, ephemeral.message_ts))
        if message is None or message.deleted:
            return
        if ephemeral.delete_original:
            message.deleted = True
            message.revisions.append(Revision("response_url", "", [], ephemeral.time))
        elif ephemeral.replace_original:
            message.text, message.blocks = ephemeral.text, ephemeral.blocks
            message.revisions.append(
                Revision("response_url", message.text, message.blocks, ephemeral.time)
            )


# -- request parsing and validation, shared by the methods -------------------------------------


async def _read_args(request: web.Request) -> tuple[Json, str | None, bool]:
    """Merge query, form and JSON arguments and find the token, as Slack does.

    Returns the arguments, the token, and whether a JSON body failed to parse.
    """
    args: Json = dict(request.query)
    token = args.pop("token", None)
    malformed = False
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            malformed = not isinstance(body, dict)
            if isinstance(body, dict):
                # Slack does not read a token from a JSON body: it must come in the header.
                body.pop("token", None)
                args |= body
        else:
            form = await request.post()
            fields = {key: value for key, value in form.items() if isinstance(value, str)}
            token = fields.pop("token", token)
            args |= fields
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ").strip()
    elif authorization.startswith("Basic "):
        # oauth.v2.access takes the app's client id and secret this way, or as form fields.
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic "), validate=True)
            client_id, _, client_secret = decoded.decode().partition(":")
        except ValueError:  # not base64, or not UTF-8: no credentials
            client_id = client_secret = ""
        if client_id:
            args.setdefault("client_id", client_id)
            args.setdefault("client_secret", client_secret)
    return args, token, malformed


def _failure_answer(failure: _Failure) -> _Answer:
    if failure.error == "ratelimited" or failure.status == 429:
        return _rate_limited_answer(
            failure.error or "ratelimited", failure.retry_after or DEFAULT_RETRY_AFTER
        )
    if failure.error is None:
        return _Answer(None, status=failure.status)
    return _Answer({"ok": False, "error": failure.error}, status=failure.status)


def _rate_limited_answer(error: str, retry_after: int) -> _Answer:
    return _Answer(
        {"ok": False, "error": error}, status=429, headers={"Retry-After": str(retry_after)}
    )


def _content(args: Json, *, allow_empty: bool = False) -> tuple[str | None, list[Json] | None]:
    """The message's text and blocks, checked as chat.postMessage and chat.update check them."""
    text = args.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    blocks = _blocks(args.get("blocks"))
    if not text and not blocks and not allow_empty:
        raise _SlackError("no_text")
    if text is not None and len(text) > MAX_TEXT_LENGTH:
        raise _SlackError("msg_too_long")
    return text, blocks


def _blocks(raw: object) -> list[Json] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _SlackError("invalid_blocks_format") from None
    if not isinstance(raw, list) or not all(isinstance(block, dict) for block in raw):
        raise _SlackError("invalid_blocks_format")
    if len(raw) > MAX_BLOCKS:
        _invalid_blocks(f"no more than {MAX_BLOCKS} items allowed", "/blocks")
    for index, block in enumerate(raw):
        problem = _block_problem(block)
        if problem is not None:
            _invalid_blocks(problem, f"/blocks/{index}")
    return raw


def _block_problem(block: Json) -> str | None:
    """What slack_sdk's block models find wrong with one block (they check Slack's limits)."""
    try:
        parsed = Block.parse(dict(block))
        if parsed is None:
            return f"unsupported block type {block.get('type')!r}"
        parsed.validate_json()
        parsed.to_dict()  # validates the block's elements and text objects too
    except SlackObjectFormationError as error:
        return str(error)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        return f"malformed block: {error}"
    return None


def _invalid_blocks(problem: str, pointer: str) -> NoReturn:
    message = f"[ERROR] {problem} [json-pointer:{pointer}]"
    raise _SlackError("invalid_blocks", errors=[message], response_metadata={"messages": [message]})


def _metadata(raw: object) -> Json | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _SlackError("invalid_metadata_format") from None
    if not isinstance(raw, dict):
        raise _SlackError("invalid_metadata_format")
    return raw


def _required(args: Json, name: str) -> str:
    value = args.get(name)
    if value is None or value == "":
        raise _SlackError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
        )
    return str(value)


def _optional_str(args: Json, name: str) -> str | None:
    value = args.get(name)
    return None if value is None or value == "" else str(value)


def _flag(value: object) -> bool | None:
    """Slack's booleans: true/false in JSON, "true"/"1"/"false"/"0" in forms."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


def _accepts_response_payload(envelope_type: str, payload: Json) -> bool:
    if envelope_type == "slash_commands":
        return True
    return envelope_type == "interactive" and payload.get("type") in {
        "view_submission",
        "block_suggestion",
    }
