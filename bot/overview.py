"""Pure rendering of followed clips in short: a line per clip for `/clip list` and the App Home."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.blocks import MESSAGE_TEXT_LIMIT, escape_mrkdwn, is_user_id, one_line, truncate
from bot.clips import Clip, ClipStatus, Ending
from bot.followed import load_clip

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.store import Tracking

# A line per clip stays readable on a phone; the list says how many more there are.
LIST_LIMIT = 20
TITLE_LIMIT = 80

_NOTHING_FOLLOWED = (
    "No clip is being followed in this channel. "
    "Start with `/clip &lt;clip id or link&gt;` (`/clip help` shows every form)."
)
_STATUS = {
    ClipStatus.INITIATING: "⏳ Initiating",
    ClipStatus.UPLOADING: "⬆️ Uploading",
    ClipStatus.RENDERING: "🎞️ Rendering",
    ClipStatus.OFFLINE: "📴 Camera offline",
    ClipStatus.UNKNOWN: "❔ Status unknown",
    ClipStatus.COMPLETE: "✅ Ready",
    ClipStatus.FAILED: "❌ Failed",
    ClipStatus.DELETED: "🗑️ Deleted in Rhombus",
}
_ENDINGS = {
    Ending.COMPLETE: "✅ Ready",
    Ending.FAILED: "❌ Failed",
    Ending.DELETED: "🗑️ Deleted in Rhombus",
    Ending.STOPPED: "⏹️ Stopped",
    Ending.GAVE_UP: "⏸️ Gave up: no progress",
    Ending.UNREACHABLE: "🔌 Gave up: Rhombus unreachable",
    Ending.NOT_FOUND: "🔍 No longer in Rhombus",
    Ending.MESSAGE_GONE: "💨 Message gone",
    Ending.UNINSTALLED: "💨 App uninstalled",
}


@dataclass(frozen=True)
class Listed:
    """One followed clip as a list shows it, with a link to its status message if Slack gave one."""

    tracking: Tracking
    permalink: str | None = None


def clip_title(clip_id: str, clip: Clip | None) -> str:
    """The clip's title on one line, made inert for mrkdwn and cut; its id when it has none."""
    title = one_line(clip.title or "") if clip is not None else ""
    return truncate(escape_mrkdwn(title or clip_id), TITLE_LIMIT)


def status_phrase(clip: Clip | None, ending: Ending | None, percent: int | None = None) -> str:
    """The clip's state in a few words: "⬆️ Uploading 45%", "✅ Ready", "⏹️ Stopped"."""
    if ending is not None:
        return _ENDINGS.get(ending, "Ended")
    if clip is None:
        return "🔎 Looking it up"
    if clip.ending is not None:
        return _ENDINGS[clip.ending]
    shown = percent if percent is not None else clip.percent
    label = _STATUS.get(clip.status, _STATUS[ClipStatus.UNKNOWN])
    return f"{label} {max(0, min(100, shown))}%" if shown is not None else label


def tracking_line(listed: Listed, *, channel: bool = False) -> str:
    """One mrkdwn line: title (linked to its message), state, who asked, and where if asked."""
    tracking = listed.tracking
    clip = load_clip(tracking.clip)
    title = clip_title(tracking.clip_id, clip)
    named = f"<{listed.permalink}|{title}>" if _linkable(listed.permalink) else f"*{title}*"
    parts = [named, status_phrase(clip, tracking.ending, tracking.percent)]
    if channel and is_user_id(tracking.channel_id):
        parts.append(f"in <#{tracking.channel_id}>")
    if is_user_id(tracking.requester_id):
        parts.append(f"asked by <@{tracking.requester_id}>")
    return " · ".join(parts)


def channel_list(listed: Sequence[Listed], followed_elsewhere: int) -> str:
    """`/clip list`: what this channel follows, then how many the person follows elsewhere."""
    if not listed:
        lines = [_NOTHING_FOLLOWED]
    else:
        count = "1 clip is" if len(listed) == 1 else f"{len(listed)} clips are"
        lines = [f"*{count} being followed in this channel:*"]
        lines += [f"• {tracking_line(item)}" for item in listed[:LIST_LIMIT]]
        if len(listed) > LIST_LIMIT:
            lines.append(f"…and {len(listed) - LIST_LIMIT} more.")
        lines.append(
            "Stop one with `/clip stop &lt;clip id or link&gt;`, or all with `/clip stop all`."
        )
    if followed_elsewhere:
        clips = "1 clip" if followed_elsewhere == 1 else f"{followed_elsewhere} clips"
        lines.append(f"You follow {clips} in other channels: see the bot's Home tab.")
    return truncate("\n".join(lines), MESSAGE_TEXT_LIMIT)


def _linkable(url: str | None) -> bool:
    # Slack's own permalinks; anything with mrkdwn's delimiters in it is not linked.
    return (
        bool(url)
        and url is not None
        and url.startswith("https://")
        and not any(character in url for character in "<>| ")
    )
