"""Block Kit building blocks: Slack's limits, text objects, and text made safe to show."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Block Kit limits this module relies on (https://docs.slack.dev/reference/block-kit).
MESSAGE_TEXT_LIMIT = 4000
MESSAGE_BLOCKS_LIMIT = 50
SECTION_TEXT_LIMIT = 3000
SECTION_FIELDS_LIMIT = 10
FIELD_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
CONTEXT_ELEMENTS_LIMIT = 10
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
BUTTON_URL_LIMIT = 3000

# The last second datetime can show (9999-12-31T23:59:59Z); later "dates" from an API are nonsense.
LATEST_EPOCH = 253_402_300_799

_SLACK_USER_ID = re.compile(r"[A-Z0-9]{1,32}")
_WHITESPACE = re.compile(r"\s+")
_ENTITIES = ("&amp;", "&lt;", "&gt;")

JsonBlock = dict[str, Any]


@dataclass(frozen=True)
class RenderedMessage:
    """A Slack message: fallback text for notifications and screen readers, and its blocks."""

    text: str
    blocks: list[JsonBlock]

    @property
    def fingerprint(self) -> str:
        """A stable hash of the message, to skip edits that would change nothing."""
        canonical = json.dumps(
            {"text": self.text, "blocks": self.blocks},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def escape_mrkdwn(text: str) -> str:
    """Make text inert in mrkdwn: no mention, link or broadcast can survive."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, ending in "…", without splitting `&amp;` and co."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1]
    start = cut.rfind("&", max(0, len(cut) - 4))
    if start != -1 and any(
        text.startswith(entity, start) and start + len(entity) > len(cut) for entity in _ENTITIES
    ):
        cut = cut[:start]
    return cut.rstrip() + "…"


def header(title: str) -> JsonBlock:
    """A header block: one line of plain text, cut to Slack's limit."""
    return {"type": "header", "text": plain(one_line(title, HEADER_TEXT_LIMIT))}


def section(text: JsonBlock) -> JsonBlock:
    """A section block with one text object."""
    return {"type": "section", "text": text}


def context(elements: list[JsonBlock]) -> JsonBlock:
    """A context block (small grey text), at most Slack's number of elements."""
    return {"type": "context", "elements": elements[:CONTEXT_ELEMENTS_LIMIT]}


def plain(text: str) -> JsonBlock:
    """A plain_text object: the place for outside text."""
    # Outside text (titles, camera names, Rhombus messages) goes only into plain_text: Slack shows
    # it as typed, so neither `<!channel>` nor `*bold*` in it means anything.
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> JsonBlock:
    """A mrkdwn text object, for the bot's own formatting (mentions, dates, bold labels)."""
    return {"type": "mrkdwn", "text": text}


def rich(text: str, *, bold: bool = False) -> JsonBlock:
    """A text element of a rich_text block, shown literally."""
    element: JsonBlock = {"type": "text", "text": text}
    if bold:
        element["style"] = {"bold": True}
    return element


def button(label: str, action_id: str, *, value: str, style: str | None = None) -> JsonBlock:
    """A button; `value` left out when empty, as Slack refuses an empty one."""
    element: JsonBlock = {
        "type": "button",
        "action_id": action_id,
        "text": plain(truncate(label, BUTTON_TEXT_LIMIT)),
    }
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    return element


def one_line(text: str, limit: int | None = None) -> str:
    """The text on one line, whitespace runs made one space, cut to `limit` if given."""
    flat = _WHITESPACE.sub(" ", text).strip()
    return flat if limit is None else truncate(flat, limit)


def is_user_id(value: str | None) -> bool:
    """Whether the value looks like a Slack user id, safe to put in a mention."""
    return value is not None and _SLACK_USER_ID.fullmatch(value) is not None


def date_token(epoch: int) -> str | None:
    """A Slack date token: each reader sees the moment in their own time zone."""
    if not 0 < epoch <= LATEST_EPOCH:
        return None
    fallback = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"
