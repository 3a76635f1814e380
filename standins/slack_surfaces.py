"""The fake Slack's views and unfurls: `views.publish`, `views.open` and `chat.unfurl`.

Checked as Slack documents them (https://docs.slack.dev/reference/methods/views.publish,
views.open, chat.unfurl): required arguments, Block Kit limits (100 blocks per view, 50 per
unfurl), the 250 kB view limit, `hash_conflict`, and the unfurl's addressing rules.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from standins.slack import (
    MAX_BLOCKS,
    Json,
    _block_problem,
    _invalid_blocks,
    _Method,
    _required,
    _SlackError,
)

if TYPE_CHECKING:
    from standins.slack import SlackSimulator

MAX_VIEW_BLOCKS: Final = 100
MAX_VIEW_BYTES: Final = 250_000
MAX_MODAL_TITLE: Final = 24
# chat.unfurl refuses rich_text blocks (https://docs.slack.dev/messaging/unfurling-links-in-messages).
_UNFURL_REFUSED_BLOCKS: Final = frozenset({"rich_text"})
_TITLE_TOO_LONG: Final = (
    f"[ERROR] must be less than {MAX_MODAL_TITLE + 1} characters [json-pointer:/view/title/text]"
)


@dataclass
class PublishedView:
    """A view as Slack holds it, with every version published."""

    id: str
    type: str
    blocks: list[Json]
    hash: str
    user: str | None = None
    callback_id: str | None = None
    private_metadata: str = ""
    versions: list[list[Json]] = field(default_factory=list)


@dataclass
class Unfurl:
    """What the app attached to one link of one message, every version in order."""

    channel: str
    ts: str
    url: str
    versions: list[list[Json]] = field(default_factory=list)

    @property
    def blocks(self) -> list[Json]:
        """The unfurl as people see it now."""
        return self.versions[-1]


class Surfaces:
    """The Home tabs, modals and unfurls of the fake workspace."""

    def __init__(self, slack: SlackSimulator, *, home_tab_enabled: bool = True) -> None:
        self._slack = slack
        self.home_tab_enabled = home_tab_enabled
        self.homes: dict[str, PublishedView] = {}  # by user id
        self.modals: list[PublishedView] = []
        self.unfurls: dict[tuple[str, str, str], Unfurl] = {}  # (channel, ts, url)
        self.composer_unfurls: list[tuple[str, Json]] = []  # (unfurl_id, unfurls)

    def methods(self) -> dict[str, _Method]:
        """The Web API methods served here."""
        return {
            "views.publish": _Method(self._views_publish),
            "views.open": _Method(self._views_open),
            "chat.unfurl": _Method(self._chat_unfurl, "links:write"),
        }

    def unfurl_of(self, channel: str, ts: str, url: str) -> Unfurl | None:
        """The unfurl of a link in a message, if the app made one."""
        return self.unfurls.get((channel, ts, url))

    # -- views -----------------------------------------------------------------------------------

    def _views_publish(self, args: Json) -> Json:
        user = _required(args, "user_id")
        view = _view(args)
        if view.get("type") != "home":
            raise _SlackError("invalid_arguments", response_metadata=_messages("view.type"))
        if not self.home_tab_enabled:
            raise _SlackError("not_enabled")
        blocks = _view_blocks(view)
        current = self.homes.get(user)
        wanted = args.get("hash")
        if wanted not in {None, ""} and (current is None or wanted != current.hash):
            raise _SlackError("hash_conflict")
        if current is None:
            current = self.homes[user] = PublishedView(
                _view_id(), "home", blocks, _hash(), user=user
            )
        current.blocks, current.hash = blocks, _hash()
        current.callback_id = _optional(view, "callback_id")
        current.private_metadata = str(view.get("private_metadata") or "")
        current.versions.append(blocks)
        return {"ok": True, "view": _view_json(current, view, self._slack.team_id)}

    def _views_open(self, args: Json) -> Json:
        trigger = _required(args, "trigger_id")
        if (refusal := self._slack.views.refusal(trigger)) is not None:
            raise _SlackError(refusal)
        view = _view(args)
        if view.get("type") != "modal":
            raise _SlackError("invalid_arguments", response_metadata=_messages("view.type"))
        title = view.get("title")
        if not isinstance(title, dict) or not str(title.get("text") or ""):
            raise _SlackError("invalid_arguments", response_metadata=_messages("view.title"))
        if len(str(title["text"])) > MAX_MODAL_TITLE:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": [_TITLE_TOO_LONG]},
            )
        blocks = _view_blocks(view)
        if any(block.get("type") == "input" for block in blocks) and not view.get("submit"):
            raise _SlackError("invalid_arguments", response_metadata=_messages("view.submit"))
        self._slack.views.spend(trigger, view)
        opened = PublishedView(
            _view_id(),
            "modal",
            blocks,
            _hash(),
            callback_id=_optional(view, "callback_id"),
            private_metadata=str(view.get("private_metadata") or ""),
            versions=[blocks],
        )
        self.modals.append(opened)
        return {"ok": True, "view": _view_json(opened, view, self._slack.team_id)}

    # -- unfurls ---------------------------------------------------------------------------------

    def _chat_unfurl(self, args: Json) -> Json:
        unfurls = _unfurls(args.get("unfurls"))
        if unfurls is None and not args.get("metadata"):
            raise _SlackError("invalid_arguments", response_metadata=_messages("unfurls"))
        unfurl_id, source = args.get("unfurl_id"), args.get("source")
        if unfurl_id or source:
            if not unfurl_id or not source:
                raise _SlackError("invalid_arguments", response_metadata=_messages("source"))
            self.composer_unfurls.append((str(unfurl_id), unfurls or {}))
            return {"ok": True}
        channel = _required(args, "channel")
        ts = _required(args, "ts")
        if channel not in self._slack.channels:
            raise _SlackError("cannot_find_channel")
        message = self._slack.messages.get((channel, ts))
        if message is None or message.deleted:
            raise _SlackError("cannot_find_message")
        for url, unfurl in (unfurls or {}).items():
            if url not in message.text:
                raise _SlackError("cannot_unfurl_url")
            key = (channel, ts, url)
            kept = self.unfurls.setdefault(key, Unfurl(channel, ts, url))
            kept.versions.append(unfurl["blocks"])
        return {"ok": True}


def _view(args: Json) -> Json:
    raw = args.get("view")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _SlackError("invalid_arguments", response_metadata=_messages("view")) from None
    if not isinstance(raw, dict):
        raise _SlackError("invalid_arguments", response_metadata=_messages("view"))
    if len(json.dumps(raw).encode()) > MAX_VIEW_BYTES:
        raise _SlackError("view_too_large")
    return raw


def _view_blocks(view: Json) -> list[Json]:
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise _SlackError("invalid_arguments", response_metadata=_messages("view.blocks"))
    if len(blocks) > MAX_VIEW_BLOCKS:
        _invalid_blocks(f"no more than {MAX_VIEW_BLOCKS} items allowed", "/view/blocks")
    for index, block in enumerate(blocks):
        problem = _block_problem(block)
        if problem is not None:
            _invalid_blocks(problem, f"/view/blocks/{index}")
    return blocks


def _unfurls(raw: object) -> dict[str, Json] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise _SlackError("invalid_unfurls_format") from None
    if not isinstance(raw, dict) or not raw:
        raise _SlackError("invalid_unfurls_format")
    for url, unfurl in raw.items():
        _check_unfurl(url, unfurl)
    return raw


def _check_unfurl(url: str, unfurl: object) -> None:
    blocks = unfurl.get("blocks") if isinstance(unfurl, dict) else None
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise _SlackError("cannot_parse_attachment")
    if len(blocks) > MAX_BLOCKS:
        _invalid_blocks(f"no more than {MAX_BLOCKS} items allowed", f"/unfurls/{url}/blocks")
    for index, block in enumerate(blocks):
        if block.get("type") in _UNFURL_REFUSED_BLOCKS:
            _invalid_blocks("unsupported block type", f"/unfurls/{url}/blocks/{index}")
        problem = _block_problem(block)
        if problem is not None:
            _invalid_blocks(problem, f"/unfurls/{url}/blocks/{index}")


def _view_json(view: PublishedView, sent: Json, team_id: str) -> Json:
    return {
        **sent,
        "id": view.id,
        "team_id": team_id,
        "type": view.type,
        "blocks": view.blocks,
        "hash": view.hash,
        "private_metadata": view.private_metadata,
        "callback_id": view.callback_id or "",
        "state": {"values": {}},
    }


def _messages(pointer: str) -> dict[str, list[str]]:
    path = "/" + pointer.replace(".", "/")
    return {"messages": [f"[ERROR] missing or invalid field [json-pointer:{path}]"]}


def _optional(view: Json, name: str) -> str | None:
    value = view.get(name)
    return None if value in {None, ""} else str(value)


def _view_id() -> str:
    return "V" + secrets.token_hex(5).upper()


def _hash() -> str:
    return f"{time.time():.6f}.{secrets.token_hex(4)}"
