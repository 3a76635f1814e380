"""Pure rendering of the App Home and its "Follow in a channel…" modal, within Slack's limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.blocks import (
    BUTTON_VALUE_LIMIT,
    SECTION_TEXT_LIMIT,
    JsonBlock,
    button,
    context,
    date_token,
    header,
    mrkdwn,
    plain,
    section,
    truncate,
)
from bot.overview import Listed, clip_title, status_phrase, tracking_line
from bot.status_message import DEFAULT_CONSOLE_URL, clip_link

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.clips import Clip

ACTION_MORE = "home_more"
ACTION_FOLLOW = "home_follow"
ACTION_OPEN = "home_open"
FOLLOW_MODAL = "home_follow_modal"
CHANNEL_BLOCK = "channel"
CHANNEL_ACTION = "channel"

VIEW_BLOCKS_LIMIT = 100  # https://docs.slack.dev/reference/block-kit/blocks: Home tabs and modals
LIVE_SHOWN = 15
FINISHED_SHOWN = 10
RECENT_PAGE = 10
RECENT_SHOWN = 30  # two blocks each: with the rest, a Home stays under 100 blocks


@dataclass(frozen=True)
class HomeState:
    """Everything one person's Home shows; rendering reads nothing else."""

    live: Sequence[Listed] = ()
    finished: Sequence[Listed] = ()
    recent: Sequence[Clip] = ()
    more_token: str | None = None
    recent_error: str | None = None  # why the recent clips cannot be shown now
    notice: str | None = None  # what came of the person's last request, e.g. a refusal
    console_url: str = DEFAULT_CONSOLE_URL
    top: Sequence[JsonBlock] = ()  # first: the workspace's Rhombus connection, when installed


def render_home(state: HomeState) -> JsonBlock:
    """The Home tab: the clips the person follows, then the organisation's recent clips."""
    blocks: list[JsonBlock] = list(state.top)
    if state.top:
        blocks.append({"type": "divider"})
    if state.notice:
        blocks.append(context([plain(truncate(f"⚠️ {state.notice}", SECTION_TEXT_LIMIT))]))
    blocks.append(header("Clips you follow"))
    if not state.live and not state.finished:
        blocks.append(
            section(
                mrkdwn(
                    "You follow no clip. Type `/clip &lt;clip id or link&gt;` in a channel, "
                    "or pick one of the recent clips below."
                )
            )
        )
    blocks += _listed(state.live, LIVE_SHOWN, "live clips")
    if state.finished:
        blocks.append(context([mrkdwn("*Finished in the last 7 days*")]))
        blocks += _listed(state.finished, FINISHED_SHOWN, "finished clips")
    blocks.append({"type": "divider"})
    blocks.append(header("Recent clips in Rhombus"))
    blocks += _recent(state)
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS_LIMIT]}


def render_refused_home(reason: str) -> JsonBlock:
    """A small Home for when Slack refused the full one (too big, malformed)."""
    return {
        "type": "home",
        "blocks": [
            header("Clips you follow"),
            section(plain(truncate(f"This page could not be shown: {reason}.", 300))),
            section(mrkdwn("Type `/clip list` in a channel to see what is followed there.")),
        ],
    }


def render_follow_modal(clip_id: str, clip: Clip | None) -> JsonBlock:
    """The "Follow in a channel…" modal: which channel to follow the clip in."""
    return {
        "type": "modal",
        "callback_id": FOLLOW_MODAL,
        "private_metadata": clip_id,
        "title": plain("Follow a clip"),
        "submit": plain("Follow"),
        "close": plain("Cancel"),
        "blocks": [
            section(mrkdwn(f"Follow *{clip_title(clip_id, clip)}* in a channel:")),
            {
                "type": "input",
                "block_id": CHANNEL_BLOCK,
                "label": plain("Channel"),
                "element": {
                    "type": "conversations_select",
                    "action_id": CHANNEL_ACTION,
                    "placeholder": plain("Pick a channel"),
                    "filter": {"include": ["public", "private"]},
                },
            },
        ],
    }


def _listed(items: Sequence[Listed], shown: int, what: str) -> list[JsonBlock]:
    blocks = [section(mrkdwn(tracking_line(item, channel=True))) for item in items[:shown]]
    if len(items) > shown:
        blocks.append(context([plain(f"…and {len(items) - shown} more {what}.")]))
    return blocks


def _recent(state: HomeState) -> list[JsonBlock]:
    if state.recent_error:
        return [section(plain(truncate(state.recent_error, SECTION_TEXT_LIMIT)))]
    if not state.recent:
        return [section(plain("No clip was saved in Rhombus in the last 7 days."))]
    blocks: list[JsonBlock] = []
    for clip in state.recent[:RECENT_SHOWN]:
        clip_id = clip.uuid or ""
        parts = [f"*{clip_title(clip_id, clip)}*", status_phrase(clip, None)]
        footage = date_token(clip.timestamp_ms // 1000) if clip.timestamp_ms else None
        if footage:
            parts.append(footage)
        blocks.append(section(mrkdwn(" · ".join(parts))))
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button("Follow in a channel…", ACTION_FOLLOW, value=clip_id),
                    button("Open in Rhombus", ACTION_OPEN, value=clip_id)
                    | {"url": clip_link(clip, state.console_url)},
                ],
            }
        )
    token = state.more_token
    if token and len(token) <= BUTTON_VALUE_LIMIT and len(state.recent) < RECENT_SHOWN:
        blocks.append({"type": "actions", "elements": [button("More", ACTION_MORE, value=token)]})
    elif len(state.recent) >= RECENT_SHOWN:
        blocks.append(context([plain("Older clips are in Rhombus, under Saved Video → Clips.")]))
    return blocks
