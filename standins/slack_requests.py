"""Requests as Slack sends them to the bot: signed HTTP posts, or Socket Mode envelope payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx

if TYPE_CHECKING:
    from standins.slack import Message, SlackSimulator
    from standins.slack_surfaces import Unfurl

SignatureMode = Literal["valid", "wrong", "missing", "old"]
EnvelopeType = Literal["slash_commands", "interactive", "events_api"]

# Slack refuses requests signed more than five minutes ago; "old" signs six minutes back.
_OLD_SIGNATURE_AGE = 6 * 60
_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
# Slack still sends this deprecated field with every request; here its value is made up.
_VERIFICATION_TOKEN = "sim-verification-token"  # noqa: S105 - not a secret


@dataclass(frozen=True)
class Origin:
    """Who does something in Slack, and where."""

    user_id: str = "U0ALICE"
    user_name: str = "alice"
    channel_id: str = "C0GENERAL"
    channel_name: str = "general"
    team_id: str = "T0SIM"
    team_domain: str = "sim"
    api_app_id: str = "A0SIM"


DEFAULT_ORIGIN = Origin()


@dataclass(frozen=True)
class SlackRequest:
    """One request from Slack, both as its HTTP body and as a Socket Mode payload."""

    envelope_type: EnvelopeType
    payload: dict[str, Any]  # what a Socket Mode envelope carries
    body: str  # what Slack posts over HTTP, form-encoded

    content_type = "application/x-www-form-urlencoded"


def slash_command(
    text: str,
    *,
    response_url: str,
    command: str = "/clip",
    origin: Origin = DEFAULT_ORIGIN,
    trigger_id: str | None = None,
) -> SlackRequest:
    """A slash command: form fields in Slack's order, all strings."""
    fields = {
        "token": _VERIFICATION_TOKEN,
        "team_id": origin.team_id,
        "team_domain": origin.team_domain,
        "channel_id": origin.channel_id,
        "channel_name": origin.channel_name,
        "user_id": origin.user_id,
        "user_name": origin.user_name,
        "command": command,
        "text": text,
        "api_app_id": origin.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }
    return SlackRequest("slash_commands", fields, urlencode(fields))


def message_shortcut(
    message: Message,
    *,
    callback_id: str,
    response_url: str,
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """A message shortcut (type message_action) run on `message`, in that message's channel."""
    payload: dict[str, Any] = {
        "type": "message_action",
        "token": _VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": {"id": origin.team_id, "domain": origin.team_domain},
        "user": _user(origin),
        "channel": {"id": message.channel, "name": origin.channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": _trigger_id(),
        "response_url": response_url,
        "message_ts": message.ts,
        "message": _message(message),
    }
    return _interactive(payload)


def block_action(  # noqa: PLR0913 - an action is named by all of these
    action_id: str,
    value: str,
    *,
    message: Message,
    response_url: str,
    block_id: str = "clip_actions",
    action_type: str = "button",
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """A click on an interactive element of `message` (type block_actions)."""
    container = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": message.channel,
        "is_ephemeral": False,
    }
    return _block_actions(
        {"action_id": action_id, "block_id": block_id, "value": value, "type": action_type},
        container=container,
        origin=origin,
        channel={"id": message.channel, "name": origin.channel_name},
        message=_message(message),
        state={"values": {}},
        response_url=response_url,
    )


def unfurl_action(
    action_id: str,
    value: str,
    *,
    unfurl: Unfurl,
    response_url: str,
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """A click on a button of the app's unfurl: no `message`; the container names the link's."""
    container = {
        "type": "message_attachment",
        "message_ts": unfurl.ts,
        "attachment_id": 1,
        "channel_id": unfurl.channel,
        "is_ephemeral": False,
        "is_app_unfurl": True,
        "app_unfurl_url": unfurl.url,
    }
    app_unfurl = {"id": 1, "blocks": unfurl.blocks, "app_unfurl_url": unfurl.url}
    return _block_actions(
        {"action_id": action_id, "block_id": "unfurl", "value": value, "type": "button"},
        container=container,
        origin=origin,
        channel={"id": unfurl.channel, "name": origin.channel_name},
        app_unfurl=app_unfurl | {"is_app_unfurl": True},
        state={"values": {}},
        response_url=response_url,
    )


@dataclass(frozen=True)
class EventRequest(SlackRequest):
    """An Events API request: JSON over HTTP, an `events_api` envelope over Socket Mode."""

    content_type = "application/json"


def event_callback(
    event: dict[str, Any], *, event_id: str | None = None, origin: Origin = DEFAULT_ORIGIN
) -> EventRequest:
    """An event wrapped as Slack delivers it (type event_callback), with a fresh event id."""
    payload: dict[str, Any] = {
        "token": _VERIFICATION_TOKEN,
        "team_id": origin.team_id,
        "api_app_id": origin.api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": origin.team_id,
                "user_id": "U0BOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return EventRequest("events_api", payload, json.dumps(payload))


def app_home_opened(*, origin: Origin = DEFAULT_ORIGIN, tab: str = "home") -> dict[str, Any]:
    """The event a person's opening the app's Home tab sends."""
    return {
        "type": "app_home_opened",
        "user": origin.user_id,
        "channel": "D0HOME",
        "tab": tab,
        "event_ts": _action_ts(),
    }


def link_shared(
    message: Message,
    urls: list[str],
    *,
    source: str = "conversations_history",
    origin: Origin = DEFAULT_ORIGIN,
) -> dict[str, Any]:
    """The event a message with links on the app's unfurl domains sends (composer: no ts)."""
    event: dict[str, Any] = {
        "type": "link_shared",
        "user": origin.user_id,
        "links": [{"domain": urlsplit(url).hostname or "", "url": url} for url in urls],
        "is_bot_user_member": True,
        "source": source,
        "unfurl_id": f"C0UNFURL{secrets.token_hex(4).upper()}",
        "event_ts": _action_ts(),
    }
    if source == "composer":
        event |= {
            "channel": "COMPOSER",
            "message_ts": f"{secrets.token_hex(8)}-{secrets.token_hex(4)}",
        }
    else:
        event |= {"channel": message.channel, "message_ts": message.ts}
        if message.thread_ts is not None:
            event["thread_ts"] = message.thread_ts
    return event


def home_action(
    action_id: str,
    value: str,
    *,
    view_id: str,
    trigger_id: str | None = None,
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """A click on a button of the app's Home tab (type block_actions, container view)."""
    return _block_actions(
        {"action_id": action_id, "block_id": "home", "value": value, "type": "button"},
        container={"type": "view", "view_id": view_id},
        origin=origin,
        trigger_id=trigger_id,
        view={"id": view_id, "type": "home", "team_id": origin.team_id},
    )


def view_submission(
    view: dict[str, Any],
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """A modal submitted (type view_submission): the view as opened, with its inputs' values.

    `values` is `state.values`: block_id -> action_id -> the element's value object.
    """
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": {"id": origin.team_id, "domain": origin.team_domain},
        "user": _user(origin),
        "api_app_id": origin.api_app_id,
        "token": _VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": {
            **view,
            "id": view.get("id") or "V0SIMVIEW",
            "team_id": origin.team_id,
            "app_id": origin.api_app_id,
            "bot_id": "B0BOT",
            "state": {"values": values},
            "hash": "1.abc",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload)


def block_suggestion(
    action_id: str,
    value: str,
    *,
    view: dict[str, Any],
    block_id: str,
    origin: Origin = DEFAULT_ORIGIN,
) -> SlackRequest:
    """Type-ahead in an external_select of an open modal (type block_suggestion)."""
    payload: dict[str, Any] = {
        "type": "block_suggestion",
        "user": _user(origin),
        "container": {"type": "view", "view_id": view.get("id") or "V0SIMVIEW"},
        "api_app_id": origin.api_app_id,
        "token": _VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": {"id": origin.team_id, "domain": origin.team_domain},
        "view": {**view, "id": view.get("id") or "V0SIMVIEW"},
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload)


def sign(body: str, secret: str, timestamp: int) -> dict[str, str]:
    """The two headers Slack signs a request with: v0 HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}


def signature_headers(
    body: str, secret: str, *, signature: SignatureMode = "valid", now: float | None = None
) -> dict[str, str]:
    """Signature headers that are right, signed with another secret, absent, or too old."""
    timestamp = int(time.time() if now is None else now)
    match signature:
        case "valid":
            return sign(body, secret, timestamp)
        case "wrong":
            return sign(body, f"not-{secret}", timestamp)
        case "old":
            return sign(body, secret, timestamp - _OLD_SIGNATURE_AGE)
        case "missing":
            return {}


async def post(  # noqa: PLR0913 - each knob is one thing Slack sends
    url: str,
    request: SlackRequest,
    *,
    signing_secret: str,
    signature: SignatureMode = "valid",
    client: httpx.AsyncClient | None = None,
    retry_num: int | None = None,
) -> httpx.Response:
    """Post `request` to a Bolt HTTP endpoint with the headers Slack sends.

    `retry_num` marks an event sent again because Slack saw no answer in time.
    """
    headers = {
        "Content-Type": request.content_type,
        "User-Agent": _USER_AGENT,
        **signature_headers(request.body, signing_secret, signature=signature),
    }
    if retry_num is not None:
        headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
    if client is not None:
        return await client.post(url, content=request.body, headers=headers)
    async with httpx.AsyncClient(trust_env=False) as own_client:
        return await own_client.post(url, content=request.body, headers=headers)


async def send_over_socket(
    slack: SlackSimulator, request: SlackRequest, *, retry_attempt: int = 0
) -> dict[str, Any]:
    """Push `request` to the app connected over Socket Mode; return the app's acknowledgement."""
    return await slack.send_socket_request(
        request.envelope_type, request.payload, retry_attempt=retry_attempt
    )


def _block_actions(
    action: dict[str, str],
    *,
    container: dict[str, Any],
    origin: Origin,
    trigger_id: str | None = None,
    **fields: object,
) -> SlackRequest:
    """A block_actions payload: who clicked what, in which container, and what else it carries."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(origin),
        "api_app_id": origin.api_app_id,
        "token": _VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": origin.team_id, "domain": origin.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        **fields,
        "actions": [action | {"action_ts": _action_ts()}],
    }
    return _interactive(payload)


def _interactive(payload: dict[str, Any]) -> SlackRequest:
    # Interactivity arrives as one form field, payload=<JSON>.
    return SlackRequest("interactive", payload, urlencode({"payload": json.dumps(payload)}))


def _user(origin: Origin) -> dict[str, str]:
    return {
        "id": origin.user_id,
        "username": origin.user_name,
        "name": origin.user_name,
        "team_id": origin.team_id,
    }


def _message(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "message",
        "user": message.user,
        "ts": message.ts,
        "text": message.text,
    }
    if message.bot_id is not None:
        body["bot_id"] = message.bot_id
    if message.blocks:
        body["blocks"] = message.blocks
    if message.thread_ts is not None:
        body["thread_ts"] = message.thread_ts
    return body


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _action_ts() -> str:
    return f"{time.time():.6f}"
