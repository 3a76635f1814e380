"""The App Home: each person's view published on open and on change, and its buttons and modal."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

from bot.budget import TokenBucket
from bot.clips import Visibility, is_clip_id
from bot.home_view import (
    CHANNEL_ACTION,
    CHANNEL_BLOCK,
    RECENT_PAGE,
    RECENT_SHOWN,
    HomeState,
    render_follow_modal,
    render_home,
    render_refused_home,
)
from bot.jobs import Background
from bot.overview import Listed
from bot.policy import Asker
from bot.rhombus import AuthenticationError, RhombusError
from bot.slack_messages import error_code
from bot.store import TrackingState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_bolt.async_app import AsyncAck
    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.blocks import JsonBlock
    from bot.clips import Clip
    from bot.following import Following
    from bot.policy import Policy
    from bot.store import Store, Tracking
    from bot.tracker import Tracker
    from bot.workspaces import Workspaces

logger = logging.getLogger(__name__)

# A person's Home is republished at most this often, however fast their clips change.
MIN_INTERVAL_SECONDS = 10.0
# views.publish is Tier 4 (100+ a minute per workspace); the bot keeps some of it spare.
PUBLISHES_PER_MINUTE = 80.0
FINISHED_DAYS = 7
# Clips the bot would not post are left out of a page; at most this many calls fill it up.
_PAGES_PER_LOAD = 3
_REFUSED_VIEW = frozenset({"view_too_large", "invalid_blocks", "invalid_arguments"})
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,31}")


@dataclass(eq=False)
class _Person:
    """What the bot keeps of one person's Home between publishes."""

    team_id: str
    user_id: str
    recent: list[Clip] = field(default_factory=list)
    more_token: str | None = None
    recent_error: str | None = None
    reload_recent: bool = True
    notice: str | None = None
    hash: str | None = None
    published_at: float = float("-inf")
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class HomeSettings:
    """What the Home shows and how often it is republished."""

    console_url: str
    post_restricted_clips: bool = False
    min_interval: float = MIN_INTERVAL_SECONDS
    publishes_per_minute: float = PUBLISHES_PER_MINUTE


class Home:
    """Publishes each person's Home tab; coalesces republishing per person and per workspace."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        workspaces: Workspaces,
        store: Store,
        tracker: Tracker,
        following: Following,
        policy: Policy,
        settings: HomeSettings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        top: Callable[[str, str], Awaitable[list[JsonBlock]]] | None = None,
    ) -> None:
        self._workspaces = workspaces
        self._store = store
        self._tracker = tracker
        self._following = following
        self._policy = policy
        self._settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        # What the Home shows first for a person of a workspace (its Rhombus connection).
        self._top = top
        self._people: dict[tuple[str, str], _Person] = {}
        self._budgets: dict[str, TokenBucket] = {}
        self._permalinks: dict[str, str | None] = {}
        self._background = Background("publishing a Home")
        tracker.watchers.append(self.on_change)

    async def close(self, grace: float = 2.0) -> None:
        """Stop republishing; give work under way (a follow from the modal) `grace` seconds."""
        for person in self._people.values():
            if person.timer is not None:
                person.timer.cancel()
        await self._background.close(grace)

    # --- Listeners ------------------------------------------------------------------------------

    async def opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """`app_home_opened`: publish the person's Home, with a fresh page of recent clips."""
        if event.get("tab") not in {None, "home"}:
            return
        person = self._person(str(context.team_id or ""), str(event.get("user") or ""))
        if person is None:
            return
        view = event.get("view")
        if isinstance(view, dict) and isinstance(view.get("hash"), str):
            person.hash = view["hash"]
        person.reload_recent = True
        self._request(person)

    async def more(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """**More**: the next page of recent clips, shown at once."""
        await ack()
        person = self._person(str(context.team_id or ""), _user_of(body))
        if person is None:
            return
        token = _action_value(body)
        if token and len(person.recent) < RECENT_SHOWN:
            await self._load_recent(person, token)
        self._request(person, at_once=True)

    async def follow_button(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """**Follow in a channel…**: a modal asking where."""
        await ack()
        clip_id = _action_value(body)
        trigger_id = body.get("trigger_id")
        if not is_clip_id(clip_id) or not isinstance(trigger_id, str):
            return
        person = self._people.get((_team_of(body), _user_of(body)))
        clip = next((c for c in person.recent if c.uuid == clip_id), None) if person else None
        try:
            await client.views_open(trigger_id=trigger_id, view=render_follow_modal(clip_id, clip))
        except (SlackApiError, ClientError, TimeoutError) as error:
            code = error_code(error) if isinstance(error, SlackApiError) else type(error).__name__
            logger.warning("could not open the follow modal (%s)", code)

    async def open_button(self, ack: AsyncAck) -> None:
        """**Open in Rhombus** is a link; Slack still sends its click, to be acknowledged."""
        await ack()

    async def follow_submitted(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """The modal's **Follow**: refuse at once what cannot be, else follow as `/clip` does."""
        view = body.get("view")
        metadata = _dig(view, "private_metadata")
        clip_id = metadata if isinstance(metadata, str) else ""
        channel_id = _selected_channel(view)
        asker = Asker(
            team_id=str(context.team_id or _team_of(body)),
            channel_id=channel_id,
            user_id=_user_of(body),
        )
        refusal = (
            "This clip can no longer be followed from here; open the Home tab again."
            if not is_clip_id(clip_id)
            else "Pick a public or private channel."
            if not _CHANNEL_ID.fullmatch(channel_id)
            else self._policy.refusal(asker)
        )
        if refusal:
            await ack(response_action="errors", errors={CHANNEL_BLOCK: refusal})
            return
        await ack()
        # The modal closes now; following (a Rhombus lookup, a post) goes on after the answer.
        self._background.spawn(self._follow_in(asker, clip_id, context))

    def workspace_changed(self, team_id: str) -> None:
        """Its Rhombus connection changed: republish the Home of everyone there who opened it."""
        for person in list(self._people.values()):
            if person.team_id == team_id:
                person.reload_recent = True
                self._request(person, at_once=True)

    def on_change(self, tracking: Tracking) -> None:
        """A followed clip changed: republish its requester's Home, if they have opened it."""
        person = self._people.get((tracking.team_id, tracking.requester_id))
        if person is not None:
            self._request(person)

    # --- Publishing -----------------------------------------------------------------------------

    def _person(self, team_id: str, user_id: str) -> _Person | None:
        if not team_id or not re.fullmatch(r"[UW][A-Z0-9]{2,31}", user_id):
            return None
        key = (team_id, user_id)
        if key not in self._people:
            self._people[key] = _Person(team_id, user_id)
        return self._people[key]

    def _request(self, person: _Person, *, at_once: bool = False) -> None:
        """Publish soon: now if the last publish is `min_interval` old, else when it is."""
        if person.timer is not None:
            if not at_once:
                return  # a publish is already due; it will show this change too
            person.timer.cancel()
            person.timer = None
        wait = person.published_at + self._settings.min_interval - self._clock()
        if at_once or wait <= 0:
            self._background.spawn(self._publish(person))
            return
        person.timer = asyncio.get_running_loop().call_later(wait, self._due, person)

    def _due(self, person: _Person) -> None:
        person.timer = None
        self._background.spawn(self._publish(person))

    async def _publish(self, person: _Person) -> None:
        async with person.lock:
            person.published_at = self._clock()
            if person.reload_recent:
                person.reload_recent = False
                person.recent, person.more_token = [], None
                await self._load_recent(person, None)
            view = render_home(await self._state(person))
            await self._budget(person.team_id).take()
            retry = await self._send(person, view)
        if retry is not None:
            person.timer = asyncio.get_running_loop().call_later(retry, self._due, person)

    async def _send(self, person: _Person, view: dict[str, Any]) -> float | None:
        """Publish; seconds to wait before trying again when Slack asks for it."""
        client = self._workspaces.slack(person.team_id)
        if client is None:
            return None  # not installed (any more)
        for attempt in range(2):
            try:
                answer = await client.views_publish(
                    user_id=person.user_id, view=view, hash=person.hash
                )
            except SlackApiError as error:
                code = error_code(error)
                if code == "hash_conflict" and attempt == 0:
                    # Published meanwhile (another process, an old tab): ours is the newest.
                    person.hash = None
                    continue
                if code in _REFUSED_VIEW and attempt == 0:
                    logger.warning("Slack refused the Home of %s (%s)", person.user_id, code)
                    view, person.hash = render_refused_home(code.replace("_", " ")), None
                    continue
                if code == "ratelimited":
                    return _retry_after(error)
                logger.warning("could not publish the Home of %s (%s)", person.user_id, code)
                return None
            except (ClientError, TimeoutError) as error:
                logger.warning("could not publish the Home of %s (%s)", person.user_id, error)
                return None
            published = answer.get("view")
            person.hash = published.get("hash") if isinstance(published, dict) else None
            return None
        return None

    async def _state(self, person: _Person) -> HomeState:
        since = self._wall_clock() - FINISHED_DAYS * 24 * 3600
        trackings = [
            self._tracker.current(tracking)
            for tracking in await self._store.of_requester(
                person.team_id, person.user_id, finished_since=since
            )
        ]
        live = [t for t in trackings if t.state != TrackingState.FINISHED and t.ending is None]
        finished = [t for t in trackings if t not in live]
        return HomeState(
            live=await self._linked(live),
            finished=await self._linked(finished),
            recent=person.recent,
            more_token=person.more_token,
            recent_error=person.recent_error,
            notice=person.notice,
            console_url=organisation.console_url
            if (organisation := self._workspaces.organisation(person.team_id))
            else self._settings.console_url,
            top=[] if self._top is None else await self._top(person.team_id, person.user_id),
        )

    async def _linked(self, trackings: list[Tracking]) -> list[Listed]:
        missing = [t for t in trackings[:RECENT_SHOWN] if t.id not in self._permalinks]
        links = await asyncio.gather(*(self._tracker.permalink(t) for t in missing))
        for tracking, link in zip(missing, links, strict=True):
            if link is not None:  # a message's link never changes; a failure is asked again
                self._permalinks[tracking.id] = link
        return [Listed(t, self._permalinks.get(t.id)) for t in trackings]

    async def _load_recent(self, person: _Person, token: str | None) -> None:
        """Add up to a page of recent clips; the filter may drop some, so ask for what is left."""
        after_ms = int((self._wall_clock() - FINISHED_DAYS * 24 * 3600) * 1000)
        wanted = RECENT_PAGE
        organisation = self._workspaces.organisation(person.team_id)
        if organisation is None:
            person.recent_error = "Rhombus isn't connected to this workspace yet."
            return
        for _ in range(_PAGES_PER_LOAD):
            try:
                page = await organisation.client.recent_clips(
                    after_ms=after_ms, page_size=wanted, page_token=token
                )
            except AuthenticationError:
                person.recent_error = "Rhombus refused the bot's API key; ask whoever runs the bot."
                return
            except RhombusError as error:
                logger.info("recent clips unavailable: %s", error)
                person.recent_error = "Rhombus is unreachable right now; open this tab again later."
                return
            person.recent_error = None
            shown = {clip.uuid for clip in person.recent}
            added = [
                clip
                for clip in page.clips
                if clip.uuid
                and is_clip_id(clip.uuid)
                and clip.uuid not in shown
                and (self._settings.post_restricted_clips or clip.visibility is Visibility.ORG_WIDE)
            ]
            person.recent += added
            wanted -= len(added)
            token = person.more_token = page.next_page_token
            if wanted <= 0 or token is None:
                return

    async def _follow_in(self, asker: Asker, clip_id: str, context: AsyncBoltContext) -> None:
        note = await self._following.follow_one(asker, clip_id, context)
        person = self._person(asker.team_id, asker.user_id)
        if person is not None:
            person.notice = f"In <#{asker.channel_id}>: {note}" if note else None
            self._request(person, at_once=note is not None)

    def _budget(self, team_id: str) -> TokenBucket:
        budget = self._budgets.get(team_id)
        if budget is None:
            rate = self._settings.publishes_per_minute
            budget = self._budgets[team_id] = TokenBucket(rate / 60, max(1.0, rate / 10))
        return budget


def _selected_channel(view: object) -> str:
    selected = _dig(view, "state", "values", CHANNEL_BLOCK, CHANNEL_ACTION, "selected_conversation")
    return selected if isinstance(selected, str) else ""


def _action_value(body: dict[str, Any]) -> str:
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = _dig(first, "value")
    return value if isinstance(value, str) else ""


def _user_of(body: dict[str, Any]) -> str:
    user = _dig(body, "user", "id")
    return user if isinstance(user, str) else ""


def _team_of(body: dict[str, Any]) -> str:
    team = _dig(body, "team", "id")
    return team if isinstance(team, str) else ""


def _dig(node: object, *keys: str) -> object:
    """The value at `keys` in nested objects; None where any level is missing or not an object."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _retry_after(error: SlackApiError) -> float:
    headers = error.response.headers or {}
    try:
        return max(1.0, float(headers.get("Retry-After") or headers.get("retry-after") or 1))
    except (TypeError, ValueError):
        return 1.0
