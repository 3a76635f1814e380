"""What a channel follows, from Slack: `/clip list` and `/clip stop <clip id or link>|all`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.clips import parse_references
from bot.followed import load_clip
from bot.overview import LIST_LIMIT, Listed, channel_list, clip_title

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncRespond
    from slack_bolt.context.async_context import AsyncBoltContext

    from bot.policy import Asker
    from bot.store import Store, Tracking
    from bot.tracker import Tracker

STOP_ALL = "all"
_STOP_USAGE = (
    "Say which clip to stop following here: `/clip stop &lt;clip id or link&gt;`, "
    "or `/clip stop all` for every clip followed in this channel."
)


class ChannelClips:
    """`/clip list` and `/clip stop`, for the channel the command was typed in."""

    def __init__(self, tracker: Tracker, store: Store) -> None:
        self._tracker = tracker
        self._store = store

    async def list_here(
        self, asker: Asker, _text: str, respond: AsyncRespond, _context: AsyncBoltContext
    ) -> None:
        """`/clip list`: the clips followed here, and how many the person follows elsewhere."""
        here = [
            self._tracker.current(tracking)
            for tracking in await self._store.open_in_channel(asker.team_id, asker.channel_id)
        ]
        theirs = await self._store.of_requester(
            asker.team_id, asker.user_id, finished_since=float("inf")
        )
        elsewhere = sum(1 for tracking in theirs if tracking.channel_id != asker.channel_id)
        links = await asyncio.gather(
            *(self._tracker.permalink(tracking) for tracking in here[:LIST_LIMIT])
        )
        listed = [
            Listed(tracking, links[index] if index < len(links) else None)
            for index, tracking in enumerate(here)
        ]
        await respond(
            text=channel_list(listed, elsewhere),
            response_type="ephemeral",
            replace_original=False,
        )

    async def stop_here(
        self, asker: Asker, text: str, respond: AsyncRespond, _context: AsyncBoltContext
    ) -> None:
        """`/clip stop <refs>` or `/clip stop all`: stop as the Stop button does, and confirm."""
        if text.strip().lower() == STOP_ALL:
            trackings = list(await self._store.open_in_channel(asker.team_id, asker.channel_id))
            if not trackings:
                await _answer(respond, "No clip is being followed in this channel.")
                return
            notes = [await self._stop_one(asker, tracking) for tracking in trackings]
            await _answer(respond, "\n".join(notes))
            return
        parsed = parse_references(text)
        notes = [f"• {rejection.reason}" for rejection in parsed.rejected[:10]]
        if not parsed.clip_ids:
            notes.append(_STOP_USAGE)
        for clip_id in parsed.clip_ids[:LIST_LIMIT]:
            tracking = await self._store.find_open(asker.team_id, asker.channel_id, clip_id)
            if tracking is None:
                notes.append(f"• Clip `{clip_id}` is not being followed in this channel.")
            else:
                notes.append(await self._stop_one(asker, tracking))
        await _answer(respond, "\n".join(notes))

    async def _stop_one(self, asker: Asker, tracking: Tracking) -> str:
        title = clip_title(tracking.clip_id, load_clip(tracking.clip))
        if await self._tracker.stop(tracking.id, asker.user_id):
            return f"• Stopped following *{title}* (`{tracking.clip_id}`)."
        return f"• *{title}* (`{tracking.clip_id}`) had already stopped."


async def _answer(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)
