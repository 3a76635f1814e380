"""Slack messages as a terminal shows them in the demo: Block Kit and mrkdwn as plain lines."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

PEOPLE = {"U0ALICE": "alice", "U0BOT": "Rhombus Clips", "U0BOB": "bob"}
_DATE_TOKEN = re.compile(r"<!date\^(\d+)\^[^|>]*\|([^>]*)>")
_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_LINK = re.compile(r"<(?:https?|slack)://[^|>]*\|([^>]*)>")


def json_list(text: str) -> list[Any]:
    """The JSON list `text` holds, or an empty one."""
    value = json.loads(text)
    return value if isinstance(value, list) else []


def blocks_as_text(blocks: list[Any]) -> list[str]:
    """Block Kit blocks as the lines a person reads."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"▌ {block['text']['text']}")
        elif kind == "section":
            if text := block.get("text"):
                lines.extend(plain(text["text"]).splitlines())
            fields = [plain(f["text"]).replace("\n", ": ", 1) for f in block.get("fields") or []]
            if fields:
                lines.append("   ".join(fields))
        elif kind == "context":
            lines.append(" · ".join(plain(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "actions":
            lines.append(" ".join(f"[{e['text']['text']}]" for e in block.get("elements", [])))
        elif kind == "rich_text":
            lines.append(_rich_text(block))
        elif kind == "image":
            lines.append(f"🖼  {block.get('alt_text', 'image')}")
    return lines


def _rich_text(block: dict[str, Any]) -> str:
    parts: list[str] = []
    for section in block.get("elements", []):
        for element in section.get("elements", []):
            if element.get("type") == "user":
                parts.append("@" + PEOPLE.get(element.get("user_id", ""), "someone"))
            else:
                parts.append(str(element.get("text", "")))
    return "".join(parts)


def plain(mrkdwn: str) -> str:
    """Mrkdwn as text: dates in local time, mentions by name, links by their label."""
    text = _DATE_TOKEN.sub(lambda m: _local_time(int(m.group(1))), mrkdwn)
    text = _MENTION.sub(lambda m: "@" + PEOPLE.get(m.group(1), m.group(1)), text)
    text = _LINK.sub(lambda m: m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("*", "")


def _local_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%H:%M:%S")
