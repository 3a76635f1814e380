"""Pure: which Rhombus links unfurl, and how: a clip's status, or a camera at a moment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from bot.blocks import (
    BUTTON_URL_LIMIT,
    LATEST_EPOCH,
    SECTION_TEXT_LIMIT,
    JsonBlock,
    RenderedMessage,
    button,
    context,
    date_token,
    escape_mrkdwn,
    mrkdwn,
    one_line,
    section,
    truncate,
)
from bot.clips import clip_id_from_url, is_clip_id
from bot.overview import clip_title, status_phrase
from bot.status_message import DEFAULT_CONSOLE_URL, clip_link

if TYPE_CHECKING:
    from bot.clips import Clip

ACTION_UNFURL_OPEN = "unfurl_open"
ACTION_UNFURL_CLIP = "unfurl_make_clip"
# Rhombus's consoles (https://docs.slack.dev: at most five unfurl domains per app).
CONSOLE_HOSTS = frozenset(
    {"console.rhombussystems.com", "console.eu.rhombussystems.com", "console.rhombus.com"}
)
_NAME_LIMIT = 150
_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
_MS = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class CameraMoment:
    """A camera-at-a-time console link: `/devices/cameras/{camera uuid}/?t={epoch ms}`."""

    camera_id: str
    at_ms: int


@dataclass(frozen=True)
class ClipLink:
    """A link containing a saved clip's id."""

    clip_id: str


@dataclass(frozen=True)
class MomentClip:
    """What **Follow a clip of this** asks for: a clip around the moment, in that thread."""

    moment: CameraMoment
    thread_ts: str | None = None

    @property
    def value(self) -> str:
        """The button's value: `{camera} {epoch ms}[ {thread ts}]`."""
        words = [self.moment.camera_id, str(self.moment.at_ms), self.thread_ts or ""]
        return " ".join(words).strip()

    @classmethod
    def of(cls, moment: CameraMoment, thread_ts: object) -> MomentClip:
        """A clip around the moment, in the thread `link_shared` named if it names one."""
        in_thread = thread_ts if isinstance(thread_ts, str) and _TS.fullmatch(thread_ts) else None
        return cls(moment, in_thread)

    @classmethod
    def read(cls, value: object) -> MomentClip | None:
        """The button's value read back; None for anything the bot did not write."""
        words = value.split(" ") if isinstance(value, str) and len(value) <= 100 else []
        if len(words) not in {2, 3} or not is_clip_id(words[0]) or not _MS.fullmatch(words[1]):
            return None
        at_ms = int(words[1])
        thread_ts = words[2] if len(words) == 3 else None
        if not 0 < at_ms <= LATEST_EPOCH * 1000 or not (
            thread_ts is None or _TS.fullmatch(thread_ts)
        ):
            return None
        return cls(CameraMoment(words[0], at_ms), thread_ts)


def read_link(url: str, hosts: frozenset[str] = CONSOLE_HOSTS) -> CameraMoment | ClipLink | None:
    """What a pasted link points at on a Rhombus console, or None if nothing the bot shows."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        query = dict(parse_qsl(parts.query))
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or host not in hosts:
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments[:2] == ["devices", "cameras"]:
        # The camera's uuid is 22 characters like a clip's: never read it as a clip.
        if len(segments) == 3 and is_clip_id(segments[2]) and query.get("t", "").isdigit():
            at_ms = int(query["t"])
            if 0 < at_ms <= LATEST_EPOCH * 1000:
                return CameraMoment(segments[2], at_ms)
        return None
    clip_id = clip_id_from_url(url)
    return ClipLink(clip_id) if clip_id else None


def render_clip_unfurl(
    clip_id: str, clip: Clip, console_url: str = DEFAULT_CONSOLE_URL
) -> RenderedMessage:
    """A clip's current status, as the unfurl of a link to it."""
    lines = [f"🎬 *{clip_title(clip_id, clip)}*", status_phrase(clip, None)]
    facts = [f"Saved clip `{clip_id}`"]
    footage = date_token(clip.timestamp_ms // 1000) if clip.timestamp_ms else None
    if footage:
        facts.append(f"footage {footage}")
    blocks = [
        section(mrkdwn(truncate("\n".join(lines), SECTION_TEXT_LIMIT))),
        context([mrkdwn(" · ".join(facts))]),
        {"type": "actions", "elements": [_open(clip_id, clip_link(clip, console_url))]},
    ]
    return RenderedMessage(text=f"{lines[0]} {lines[1]}", blocks=blocks)


def render_refused_unfurl(clip_id: str, reason: str) -> RenderedMessage:
    """What Rhombus said instead of the clip (unknown, or not visible to the bot's key)."""
    said = truncate(escape_mrkdwn(one_line(reason)), 300)
    text = f"🔍 Rhombus can't show clip `{clip_id}`: {said}"
    return RenderedMessage(text=text, blocks=[section(mrkdwn(text))])


def render_camera_unfurl(
    moment: CameraMoment,
    camera: CameraShown,
    console_url: str = DEFAULT_CONSOLE_URL,
    *,
    offer: MomentClip | None = None,
) -> RenderedMessage:
    """A camera at a moment: its name, location and the moment, in each reader's time zone.

    With `offer`, a **Follow a clip of this** button asks for a clip around that moment.
    """
    name = one_line(camera.name or "", _NAME_LIMIT) or "Rhombus camera"
    location = one_line(camera.location or "", _NAME_LIMIT)
    where = f" · {escape_mrkdwn(location)}" if location else ""
    when = date_token(moment.at_ms // 1000) or ""
    text = truncate(f"📷 *{escape_mrkdwn(name)}*{where}\n{when}", SECTION_TEXT_LIMIT)
    camera_id = quote(moment.camera_id, safe="")
    url = f"{console_url.rstrip('/')}/devices/cameras/{camera_id}/?t={moment.at_ms}"
    buttons = [_open(moment.camera_id, url)]
    if offer is not None:
        label = "Follow a clip of this"
        buttons.insert(0, button(label, ACTION_UNFURL_CLIP, value=offer.value, style="primary"))
    blocks = [section(mrkdwn(text)), {"type": "actions", "elements": buttons}]
    return RenderedMessage(text=f"📷 {escape_mrkdwn(name)}{where}", blocks=blocks)


@dataclass(frozen=True)
class CameraShown:
    """What an unfurl says of a camera: its name and location, when Rhombus gives them."""

    name: str | None = None
    location: str | None = None


def _open(value: str, url: str) -> JsonBlock:
    element = button("Open in Rhombus", ACTION_UNFURL_OPEN, value=value)
    return element | {"url": url} if len(url) <= BUTTON_URL_LIMIT else element
