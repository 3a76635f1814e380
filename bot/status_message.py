"""The status message: a followed clip's state as fallback text and blocks, and the final reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from bot.blocks import (
    BUTTON_URL_LIMIT,
    BUTTON_VALUE_LIMIT,
    FIELD_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    LATEST_EPOCH,
    MESSAGE_TEXT_LIMIT,
    SECTION_FIELDS_LIMIT,
    SECTION_TEXT_LIMIT,
    JsonBlock,
    RenderedMessage,
    button,
    context,
    date_token,
    escape_mrkdwn,
    header,
    is_user_id,
    mrkdwn,
    one_line,
    plain,
    rich,
    section,
    truncate,
)
from bot.clip_facts import (
    VISIBILITY_TEXT,
    duration_text,
    minutes_text,
    resolution_text,
    size_text,
)
from bot.clips import Clip, ClipStatus, Ending

if TYPE_CHECKING:
    from collections.abc import Mapping

ACTION_REFRESH = "clip_refresh"
ACTION_STOP = "clip_stop"
ACTION_OPEN = "clip_open"
ACTION_CANCEL = "clip_cancel"
ACTION_RETRY = "clip_retry"

DEFAULT_CONSOLE_URL = "https://console.rhombussystems.com"

# How much outside text is worth showing: shorter than Slack allows, so the message stays
# readable on a phone.
_TITLE_LIMIT = HEADER_TEXT_LIMIT
_DETAIL_LIMIT = 500
_CAMERA_NAME_LIMIT = 100
_CAMERAS_SHOWN = 10
_BAR_SEGMENTS = 10


@dataclass(frozen=True)
class MadeFromSlack:
    """A clip the bot made with `/clip new`: who asked, from which camera, which footage."""

    creator: str
    camera: str
    start: int  # epoch seconds
    duration_sec: int
    made_at: float
    # Stretches of the range without recorded footage, as (start, end) epoch seconds.
    missing: tuple[tuple[int, int], ...] = ()
    retried_at: float | None = None  # when someone last pressed Retry


@dataclass(frozen=True)
class StatusView:
    """Everything the status message shows; rendering reads nothing else (not even the clock)."""

    clip_id: str
    clip: Clip | None
    requester: str
    started_at: int
    changed_at: int
    percent: int | None = None
    cameras: Mapping[str, str] = field(default_factory=dict)
    ending: Ending | None = None
    stopped_by: str | None = None
    give_up_minutes: int | None = None
    notice: str | None = None
    console_url: str = DEFAULT_CONSOLE_URL
    made: MadeFromSlack | None = None


def clip_link(clip: Clip | None, console_url: str = DEFAULT_CONSOLE_URL) -> str:
    """Where "Open in Rhombus" goes: the clip's first camera at its start, else the console."""
    # Rhombus documents no console link to one saved clip; a camera at a moment is the closest.
    base = console_url.rstrip("/")
    root = f"{base}/"
    if clip is None or not clip.camera_ids or clip.timestamp_ms is None:
        return root
    if not 0 < clip.timestamp_ms <= LATEST_EPOCH * 1000:
        return root
    camera = quote(clip.camera_ids[0], safe="")
    url = f"{base}/devices/cameras/{camera}/?t={clip.timestamp_ms}"
    return url if len(url) <= BUTTON_URL_LIMIT else root


def render_status(view: StatusView) -> RenderedMessage:
    """The in-channel status message, while following and after."""
    state = _state(view)
    ending = _ending_line(view)
    blocks: list[JsonBlock] = [header(_title(view))]
    if state is not None:
        blocks.append(section(plain(truncate(state.line, SECTION_TEXT_LIMIT))))
    if ending is not None:
        blocks.append(section(ending.text))
    notice = one_line(view.notice or "", _DETAIL_LIMIT)
    if notice and view.ending is None:
        # After the end a notice such as "retrying" is stale; NOT_FOUND shows it as its reason.
        blocks.append(context([plain(f"⚠️ {notice}")]))
    blocks.extend(_details(view))
    blocks.extend(_made_lines(view.made))
    blocks.append(_actions(view))

    summary = " · ".join(
        part
        for part in (state.summary if state else None, ending.summary if ending else None)
        if part
    )
    title = truncate(escape_mrkdwn(one_line(_title(view))), _TITLE_LIMIT)
    text = truncate(f"Clip “{title}” — {summary}", MESSAGE_TEXT_LIMIT)
    return RenderedMessage(text=text, blocks=blocks)


def render_final_reply(view: StatusView) -> RenderedMessage | None:
    """The thread reply that tells the requester their clip is ready, failed or was deleted."""
    if view.ending is None or not view.ending.is_outcome:
        return None
    title = one_line(_title(view), _TITLE_LIMIT)
    if view.ending is Ending.COMPLETE:
        emoji, outcome, detail = "✅", "is ready", None
    elif view.ending is Ending.FAILED:
        emoji, outcome, detail = "❌", "failed", _failure_reason(view.clip)
    else:
        emoji, outcome, detail = "🗑️", "was deleted in Rhombus", None
    user = view.requester if is_user_id(view.requester) else None

    # Rich text shows the title literally and in bold; mrkdwn would read `*`, `_` and `~` in it.
    elements: list[JsonBlock] = [rich(f"{emoji} ")]
    if user:
        elements += [{"type": "user", "user_id": user}, rich(" your clip ")]
    else:
        elements.append(rich("Your clip "))
    elements += [rich(title, bold=True), rich(f" {outcome}" + (": " if detail else "."))]
    if detail:
        elements.append(rich(detail))
    blocks: list[JsonBlock] = [
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": elements}]}
    ]
    if view.ending is Ending.COMPLETE:
        blocks.append({"type": "actions", "elements": [_open_button(view, primary=True)]})

    subject = f"<@{user}> your clip" if user else "Your clip"
    said = f"{outcome}: {escape_mrkdwn(detail)}" if detail else outcome
    text = f"{subject} “{escape_mrkdwn(title)}” {said}"
    return RenderedMessage(text=truncate(text, MESSAGE_TEXT_LIMIT), blocks=blocks)


# --- What the clip's state reads as ---------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    line: str  # plain text for the blocks
    summary: str  # the same, for the fallback text (no emoji, mrkdwn-escaped)


@dataclass(frozen=True)
class _EndingLine:
    text: JsonBlock
    summary: str


_IN_PROGRESS: dict[ClipStatus, tuple[str, str]] = {
    ClipStatus.INITIATING: ("⏳", "Initiating"),
    ClipStatus.UPLOADING: ("⬆️", "Uploading"),
    ClipStatus.RENDERING: ("🎞️", "Rendering"),
    ClipStatus.OFFLINE: ("📴", "Camera offline"),
    ClipStatus.UNKNOWN: ("❔", "Status unknown"),
}
_READY = _Line("✅ Ready", "Ready")
_DELETED = _Line("🗑️ This clip was deleted in Rhombus", "Deleted in Rhombus")
_LOOKING_UP = _Line("🔎 Looking up the clip in Rhombus…", "Looking it up in Rhombus")


def _state(view: StatusView) -> _Line | None:
    """The clip's status line; None when there is no state to show besides the ending."""
    outcome = _outcome(view)
    if outcome is Ending.COMPLETE:
        return _READY
    if outcome is Ending.FAILED:
        reason = _failure_reason(view.clip)
        if reason is None:
            return _Line("❌ Failed", "Failed")
        return _Line(f"❌ Failed: {reason}", f"Failed: {escape_mrkdwn(reason)}")
    if outcome is Ending.DELETED:
        return _DELETED
    if view.clip is None:
        return _LOOKING_UP if view.ending is None else None
    return _progress(view.clip, _percent(view))


def _outcome(view: StatusView) -> Ending | None:
    """COMPLETE, FAILED or DELETED once the tracker or the clip itself says so."""
    if view.ending is not None and view.ending.is_outcome:
        return view.ending
    return view.clip.ending if view.clip is not None else None


def _progress(clip: Clip, percent: int | None) -> _Line:
    emoji, label = _IN_PROGRESS.get(clip.status, _IN_PROGRESS[ClipStatus.UNKNOWN])
    line, summary = f"{emoji} {label}", label
    operation = one_line(clip.current_operation or "", _DETAIL_LIMIT)
    if operation and operation.casefold() != label.casefold():
        line += f" · {operation}"
    if percent is not None:
        filled = percent * _BAR_SEGMENTS // 100
        line += f"\n{'▰' * filled}{'▱' * (_BAR_SEGMENTS - filled)} {percent}%"
        summary += f" {percent}%"
    return _Line(line, summary)


def _ending_line(view: StatusView) -> _EndingLine | None:  # noqa: PLR0911  # one per ending
    """Why following stopped, for the endings the status line does not already say."""
    minutes = minutes_text(view.give_up_minutes)
    if view.ending is Ending.STOPPED:
        by = f" — stopped by <@{view.stopped_by}>" if is_user_id(view.stopped_by) else ""
        return _EndingLine(mrkdwn(f"⏹️ Stopped following{by}"), "Stopped following")
    if view.ending is Ending.CANCELLED:
        by = f" by <@{view.stopped_by}>" if is_user_id(view.stopped_by) else ""
        return _EndingLine(mrkdwn(f"🚫 Cancelled{by}"), "Cancelled")
    if view.ending is Ending.GAVE_UP:
        said = f"Stopped following: no progress for {minutes}" if minutes else "Stopped following"
        return _EndingLine(plain(f"⏸️ {said}"), said)
    if view.ending is Ending.UNREACHABLE:
        said = "Stopped following: Rhombus could not be reached" + (
            f" for {minutes}" if minutes else ""
        )
        return _EndingLine(plain(f"🔌 {said}"), said)
    if view.ending is Ending.NOT_FOUND:
        said = "Rhombus no longer finds this clip"
        why = one_line(view.notice or "", _DETAIL_LIMIT)
        if not why:
            return _EndingLine(plain(f"🔍 {said}"), said)
        return _EndingLine(plain(f"🔍 {said}: {why}"), f"{said}: {escape_mrkdwn(why)}")
    return None


def _failure_reason(clip: Clip | None) -> str | None:
    # Rhombus's player shows currentOperation as the reason a clip failed.
    reason = one_line(clip.current_operation or "", _DETAIL_LIMIT) if clip else ""
    return reason or None


def _percent(view: StatusView) -> int | None:
    if view.percent is not None:
        return max(0, min(100, view.percent))
    return view.clip.percent if view.clip else None


def _title(view: StatusView) -> str:
    for candidate in (view.clip.title if view.clip else None, view.clip_id):
        if candidate and candidate.strip():
            return candidate
    return "Saved clip"


# --- Details ------------------------------------------------------------------------------------


def _details(view: StatusView) -> list[JsonBlock]:
    """Description, cameras, footage facts and who asked; each left out when unknown."""
    clip = view.clip
    blocks: list[JsonBlock] = []
    description = one_line(clip.description or "", _DETAIL_LIMIT) if clip else ""
    if description:
        blocks.append(context([plain(description)]))
    cameras = _camera_names(view)
    if cameras:
        blocks.append(section(plain(truncate(f"📷 {cameras}", SECTION_TEXT_LIMIT))))
    fields = _fields(clip) if clip else []
    if fields:
        blocks.append({"type": "section", "fields": fields[:SECTION_FIELDS_LIMIT]})
    footer = [
        text
        for text in (
            f"Asked by <@{view.requester}>" if is_user_id(view.requester) else None,
            _dated("Started following", view.started_at),
            _dated("Last change", view.changed_at),
        )
        if text
    ]
    if footer:
        blocks.append(context([mrkdwn(text) for text in footer]))
    return blocks


def _camera_names(view: StatusView) -> str:
    ids = view.clip.camera_ids if view.clip else []
    names = [
        one_line(view.cameras.get(camera) or "", _CAMERA_NAME_LIMIT)
        or one_line(camera, _CAMERA_NAME_LIMIT)
        for camera in ids[:_CAMERAS_SHOWN]
    ]
    shown = ", ".join(name for name in names if name)
    more = len(ids) - _CAMERAS_SHOWN
    return f"{shown} and {more} more" if more > 0 and shown else shown


def _fields(clip: Clip) -> list[JsonBlock]:
    """Label and value pairs, mrkdwn because the footage start is a date token."""
    facts: list[tuple[str, str | None]] = [
        ("Footage", date_token(clip.timestamp_ms // 1000) if clip.timestamp_ms else None),
        ("Length", duration_text(clip.duration_sec)),
    ]
    if clip.succeeded:
        facts += [("Resolution", resolution_text(clip)), ("Size", size_text(clip.byte_count))]
    facts.append(("Visible to", VISIBILITY_TEXT.get(clip.visibility)))
    return [
        mrkdwn(truncate(f"*{label}*\n{value}", FIELD_TEXT_LIMIT))
        for label, value in facts
        if value is not None
    ]


def _dated(label: str, epoch: int) -> str | None:
    token = date_token(epoch)
    return f"{label} {token}" if token else None


# --- Buttons ------------------------------------------------------------------------------------


def _actions(view: StatusView) -> JsonBlock:
    following = view.ending is None
    ready = view.clip is not None and view.clip.succeeded
    elements = [_open_button(view, primary=ready)]
    if following:
        value = view.clip_id[:BUTTON_VALUE_LIMIT]
        elements.append(button("Refresh", ACTION_REFRESH, value=value))
        elements.append(
            button("Stop updates", ACTION_STOP, value=value, style="danger")
            | {
                "confirm": {
                    "title": plain("Stop updates?"),
                    "text": plain(
                        "This message keeps its last state and stops following the clip."
                    ),
                    "confirm": plain("Stop updates"),
                    "deny": plain("Keep following"),
                    "style": "danger",
                }
            }
        )
    if view.made is not None:
        elements.extend(_made_buttons(view))
    return {"type": "actions", "elements": elements}


def _made_buttons(view: StatusView) -> list[JsonBlock]:
    """Cancel while a made clip is not final; Retry once it failed."""
    value = view.clip_id[:BUTTON_VALUE_LIMIT]
    if view.ending is None and not (view.clip is not None and view.clip.is_final):
        confirm = {
            "title": plain("Cancel this clip?"),
            "text": plain("Rhombus stops making the clip, and this message stops following it."),
            "confirm": plain("Cancel clip"),
            "deny": plain("Keep making it"),
            "style": "danger",
        }
        return [button("Cancel", ACTION_CANCEL, value=value, style="danger") | {"confirm": confirm}]
    if _outcome(view) is Ending.FAILED:
        return [button("Retry", ACTION_RETRY, value=value)]
    return []


def _made_lines(made: MadeFromSlack | None) -> list[JsonBlock]:
    """Who made the clip from Slack, from which camera and footage, and what has no footage."""
    if made is None:
        return []
    by = f"<@{made.creator}>" if is_user_id(made.creator) else "someone"
    camera = escape_mrkdwn(one_line(made.camera, _CAMERA_NAME_LIMIT))
    start = date_token(made.start) or str(made.start)
    length = duration_text(made.duration_sec) or f"{made.duration_sec} s"
    lines = [mrkdwn(f"🎬 Made from Slack by {by} · {camera} · from {start} for {length}")]
    if made.missing:
        gaps = ", ".join(
            f"{date_token(first) or first} for {duration_text(last - first) or '?'}"
            for first, last in made.missing[:5]
        )
        lines.append(mrkdwn(truncate(f"⚠️ No recorded footage: {gaps}", SECTION_TEXT_LIMIT)))
    return [context(lines)]


def _open_button(view: StatusView, *, primary: bool) -> JsonBlock:
    value = view.clip_id[:BUTTON_VALUE_LIMIT]
    element = button(
        "Open in Rhombus", ACTION_OPEN, value=value, style="primary" if primary else None
    )
    return element | {"url": clip_link(view.clip, view.console_url)}
