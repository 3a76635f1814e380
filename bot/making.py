"""Making clips from Slack: `/clip new`, its modal, and Cancel and Retry on the status message.

A clip is asked of Rhombus (`spliceV3`) only once what the person typed or picked is checked like
any other input; the clip it returns is then followed exactly as `/clip <id>` follows one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.cameras import Camera, describe_miss, find_camera, footage
from bot.clips import AccessSettings, Clip, ClipStatus, Ending, Visibility, quote_for_reason
from bot.made import MadeClip, MadeState
from bot.making_views import (
    CAMERA_BLOCK,
    DURATION_BLOCK,
    TIME_BLOCK,
    ModalContext,
    camera_options,
    read_values,
    render_modal,
)
from bot.rhombus import RejectedError, RhombusError, Splice
from bot.store import TrackingState
from bot.tracker import AlreadyFollowing, NotPosted
from bot.when import (
    Range,
    WrongInput,
    check_past,
    describe_seconds,
    local_label,
    parse_duration,
    parse_start,
    start_words,
    zone_of,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from slack_bolt.async_app import AsyncAck, AsyncRespond
    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.directory import Directory
    from bot.made import MadeClips
    from bot.policy import Asker, Policy
    from bot.rhombus import RhombusClient
    from bot.status_message import MadeFromSlack
    from bot.store import Tracking
    from bot.tracker import Tracker

    Tell = Callable[[str], Awaitable[None]]

logger = logging.getLogger(__name__)

EXAMPLE = '`/clip new "Loading Dock North" -10m 2m Forklift near door 3`'
USAGE = (
    "`/clip new &lt;camera&gt; &lt;start&gt; &lt;duration&gt; [title]` makes a clip from a "
    f"camera and follows it here, e.g. {EXAMPLE}; `/clip new` alone opens a form."
)
_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201c"}


@dataclass(frozen=True)
class Order:
    """A checked request for a clip."""

    camera: Camera
    range: Range
    title: str
    description: str
    audio: bool


class Making:
    """Makes clips in Rhombus for people in Slack, and hands them to the tracker."""

    def __init__(  # noqa: PLR0913  # the parts making a clip touches
        self,
        *,
        tracker: Tracker,
        rhombus: RhombusClient,
        directory: Directory,
        policy: Policy,
        made_clips: MadeClips,
        shown: MutableMapping[str, MadeFromSlack],
        slack: AsyncWebClient,
        visibility: str = Visibility.ORG_WIDE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = tracker
        self._rhombus = rhombus
        self._directory = directory
        self._policy = policy
        self._made = made_clips
        self._shown = shown  # shared with the tracker: what each message says of its clip
        self._slack = slack
        self._visibility = visibility
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    # --- Starting -------------------------------------------------------------------------------

    async def load(self) -> None:
        """Know every clip made from Slack, before the tracker renders any of their messages."""
        for made in await self._made.all_made():
            if made.clip_id:
                self._shown[made.clip_id] = made.shown

    async def resume(self) -> None:
        """After a crash: follow clips made but not posted; tell whoever asked when unsure."""
        for made in await self._made.unsettled():
            if made.state == MadeState.SPLICING:
                await self._tell_user(
                    made,
                    f"The bot restarted while asking Rhombus for your clip “{made.title}”, so I "
                    "can't tell whether it was made. Look in Rhombus's saved clips before asking "
                    "again; `/clip <clip id>` follows one here.",
                )
                made.state = MadeState.TOLD
                await self._made.save(made)
            elif await self._made.tracked(made):
                made.state = MadeState.POSTED
                await self._made.save(made)
            else:
                logger.info("posting clip %s made before a restart", made.clip_id)
                await self._post(made, functools.partial(self._tell_user, made))

    # --- `/clip new` ----------------------------------------------------------------------------

    async def new_text(
        self, asker: Asker, text: str, respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        """`/clip new …`: make a clip from the words, or open the form when there are none."""

        async def tell(message: str) -> None:
            await respond(text=message, response_type="ephemeral", replace_original=False)

        if refusal := self._policy.creation_refusal(asker):
            await tell(refusal)
            return
        client = context.client or self._slack
        if not text:
            await self._open_modal(asker, str(context.get("trigger_id") or ""), client, tell)
            return
        zone = await self._zone(client, asker.user_id)
        try:
            order = await self._order_from_text(text, zone)
        except WrongInput as wrong:
            await tell(f"{wrong}\nFor example: {EXAMPLE}")
            return
        except RhombusError as error:
            await tell(_unreachable(error))
            return
        await self._make(asker, order, tell)

    async def _order_from_text(self, text: str, zone: tzinfo) -> Order:
        typed_camera, rest = _split_camera(text)
        words = rest.split()
        if not words:
            raise WrongInput("start", "Say when the clip starts, after the camera.")
        count = start_words(words)
        now = datetime.fromtimestamp(self._clock(), UTC)
        start = parse_start(" ".join(words[:count]), now=now, zone=zone)
        if len(words) <= count:
            raise WrongInput("duration", "Say how long the clip lasts, after its start.")
        duration = parse_duration(words[count], max_sec=await self._directory.max_duration())
        wanted = Range(start, duration)
        check_past(wanted, now=now)
        camera = await self._camera(typed_camera)
        title = " ".join(words[count + 1 :]) or f"{camera.name} {local_label(start, zone)}"
        return Order(camera, wanted, title[:200], "", audio=camera.has_audio)

    async def _camera(self, typed: str) -> Camera:
        found = find_camera(await self._directory.cameras(), typed)
        if isinstance(found, Camera):
            return found
        raise WrongInput("camera", describe_miss(typed, found))

    # --- The modal ------------------------------------------------------------------------------

    async def _open_modal(
        self, asker: Asker, trigger_id: str, client: AsyncWebClient, tell: Tell
    ) -> None:
        tz, offset = await self._user_zone(client, asker.user_id)
        context = ModalContext(asker.channel_id, tz, offset)
        now_local = datetime.fromtimestamp(self._clock(), zone_of(tz, offset))
        try:
            await client.views_open(trigger_id=trigger_id, view=render_modal(context, now_local))
        except SlackApiError as error:
            logger.warning("views.open failed: %s", error.response.get("error"))
            await tell("I couldn't open the form; type the clip instead, e.g. " + EXAMPLE + ".")

    async def camera_options(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """The camera type-ahead (block_suggestion), from the cached camera list."""
        try:
            cameras = await self._directory.cameras()
        except RhombusError as error:
            logger.warning("camera list unavailable: %s", error)
            cameras = []
        await ack(options=camera_options(cameras, str(body.get("value") or "")))

    async def submit_modal(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The form submitted: errors under their fields, else close it and make the clip."""
        view = body.get("view") or {}
        context = ModalContext.load(view.get("private_metadata"))
        user_id = str((body.get("user") or {}).get("id") or "")
        team_id = str(
            (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or ""
        )
        if context is None:
            await ack()
            return
        from bot.policy import Asker  # noqa: PLC0415  # a dataclass, imported where built

        asker = Asker(team_id=team_id, channel_id=context.channel_id, user_id=user_id)
        refusal = self._policy.refusal(asker) or self._policy.creation_refusal(asker)
        if refusal:
            await ack(response_action="errors", errors={CAMERA_BLOCK: refusal[:150]})
            return
        order = await self._order_from_modal(view.get("state", {}).get("values"), context)
        if isinstance(order, dict):
            await ack(response_action="errors", errors=order)
            return
        await ack()

        async def tell(message: str) -> None:
            await self._ephemeral(client, asker.channel_id, asker.user_id, message)

        self._spawn(self._make(asker, order, tell))

    async def _order_from_modal(
        self, state: object, context: ModalContext
    ) -> Order | dict[str, str]:
        values = read_values(state)
        zone = zone_of(context.tz, context.tz_offset)
        errors: dict[str, str] = {}
        try:
            cameras = await self._directory.cameras()
        except RhombusError:
            cameras = []
        camera = next((c for c in cameras if c.uuid == values.camera_id), None)
        if camera is None:
            errors[CAMERA_BLOCK] = "Pick a camera from the list."
        now = datetime.fromtimestamp(self._clock(), UTC)
        start = duration = None
        try:
            start = parse_start(f"{values.date} {values.time}", now=now, zone=zone)
        except WrongInput:
            errors[TIME_BLOCK] = "Pick a date and a time of day."
        try:
            duration = parse_duration(
                values.duration or "", max_sec=await self._directory.max_duration()
            )
        except WrongInput as wrong:
            errors[DURATION_BLOCK] = str(wrong).replace("`", "")[:150]
        except RhombusError:
            errors[DURATION_BLOCK] = "Rhombus is unreachable right now; try again in a minute."
        if start is not None and duration is not None:
            try:
                check_past(Range(start, duration), now=now)
            except WrongInput as wrong:
                errors[TIME_BLOCK] = str(wrong).replace("`", "")[:150]
        if errors or camera is None or start is None or duration is None:
            return errors
        title = values.title or f"{camera.name} {local_label(start, zone)}"
        return Order(
            camera,
            Range(start, duration),
            title[:200],
            (values.description or "")[:1000],
            audio=values.audio and camera.has_audio,
        )

    # --- Making and posting ---------------------------------------------------------------------

    async def _make(self, asker: Asker, order: Order, tell: Tell) -> None:
        """Check the footage, splice, record, then post and follow the status message."""
        async with self._tracker.working():
            camera, wanted = order.camera, order.range
            start_sec = wanted.start_ms // 1000
            try:
                windows = await self._rhombus.presence_windows(
                    camera.uuid, start_sec, wanted.duration_sec
                )
            except RhombusError as error:
                await tell(_unreachable(error))
                return
            recorded = footage(windows, start_sec, wanted.duration_sec)
            if recorded.none:
                await tell(
                    f"{quote_for_reason(camera.name)} recorded nothing from "
                    f"{local_label(wanted.start, UTC)} UTC for "
                    f"{describe_seconds(wanted.duration_sec)}, so Rhombus would make a clip of "
                    f"“video not available” frames. Pick another start, e.g. {EXAMPLE}."
                )
                return
            made = MadeClip(
                id=MadeClip.new_id(),
                team_id=asker.team_id,
                channel_id=asker.channel_id,
                creator_id=asker.user_id,
                camera_id=camera.uuid,
                camera_name=camera.name,
                title=order.title,
                start_ms=wanted.start_ms,
                duration_sec=wanted.duration_sec,
                missing=[list(gap) for gap in recorded.missing],
                clip_id=None,
                state=MadeState.SPLICING,
                made_at=self._clock(),
            )
            await self._made.add(made)
            if not await self._splice(made, order, tell):
                return
            if not camera.online:
                await tell(
                    f"⚠️ {quote_for_reason(camera.name)} is offline right now: its clip may wait "
                    "for it to reconnect before it uploads."
                )
            await self._post(made, tell)

    async def _splice(self, made: MadeClip, order: Order, tell: Tell) -> bool:
        devices = [f"{order.camera.uuid}.v0"] + ([f"{order.camera.uuid}.a0"] if order.audio else [])
        wanted = Splice(
            devices=devices,
            start_ms=order.range.start_ms,
            duration_sec=order.range.duration_sec,
            title=order.title,
            description=order.description,
            visibility=self._visibility,
        )
        try:
            made.clip_id = await self._rhombus.splice(wanted)
        except RejectedError as error:
            made.state = MadeState.TOLD
            await self._made.save(made)
            await tell(f"Rhombus refused to make the clip: {quote_for_reason(str(error))[1:-1]}")
            return False
        except RhombusError as error:
            # A timeout may come after Rhombus made the clip: the person must not retry blindly.
            made.state = MadeState.TOLD
            await self._made.save(made)
            logger.warning("spliceV3 failed: %s", error)
            await tell(
                f"Rhombus did not answer ({error}); the clip may or may not have been made. "
                "Look in Rhombus's saved clips before asking again."
            )
            return False
        made.state = MadeState.SPLICED
        await self._made.save(made)
        self._shown[made.clip_id] = made.shown
        logger.info("made clip %s from Slack", made.clip_id, extra=made.log_context)
        return True

    async def _post(self, made: MadeClip, tell: Tell) -> None:
        clip_id = made.clip_id or ""
        try:
            clip = await self._rhombus.get_clip(clip_id)
        except RhombusError:
            clip = _starting(made, self._visibility)  # not known yet, moments after the splice
        result = await self._tracker.follow(
            team_id=made.team_id,
            channel_id=made.channel_id,
            thread_ts=None,
            clip_id=clip_id,
            requester_id=made.creator_id,
            clip=clip,
        )
        made.state = MadeState.POSTED
        await self._made.save(made)
        if isinstance(result, NotPosted):
            await tell(
                f"Rhombus is making clip `{clip_id}`, but Slack refused its status message "
                f"here ({result.error}); `/clip {clip_id}` follows it where the bot can post."
            )
        elif isinstance(result, AlreadyFollowing):
            await tell(f"Clip `{clip_id}` is already followed in this channel.")

    # --- Cancel and Retry -----------------------------------------------------------------------

    async def cancel_button(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """**Cancel**: Rhombus stops making the clip; the message ends "Cancelled by @x"."""
        await ack()
        tracking, user_id = await self._tracking_of(body), _user_of(body)
        if tracking is None or tracking.clip_id not in self._shown:
            await _whisper(respond, "This clip is no longer being made here.")
            return
        if tracking.state != TrackingState.FOLLOWING:
            await _whisper(respond, "This clip is already finished; it can't be cancelled.")
            return
        try:
            await self._rhombus.cancel_splice(tracking.clip_id)
        except RejectedError as error:
            await _whisper(respond, f"Rhombus could not cancel the clip: {error}")
            return
        except RhombusError as error:
            await _whisper(respond, _unreachable(error))
            return
        await self._tracker.stop(tracking.id, user_id, ending=Ending.CANCELLED)

    async def retry_button(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """**Retry** on a failed clip: Rhombus makes it again; the same message follows it."""
        await ack()
        tracking = await self._tracking_of(body)
        if tracking is None or tracking.clip_id not in self._shown:
            await _whisper(respond, "This clip was not made from Slack, so I can't retry it.")
            return
        if tracking.ending is not Ending.FAILED or tracking.state != TrackingState.FINISHED:
            await _whisper(respond, "Only a failed clip can be retried.")
            return
        try:
            await self._rhombus.retry_splice(tracking.clip_id)
        except RejectedError as error:
            await _whisper(respond, f"Rhombus could not retry the clip: {error}")
            return
        except RhombusError as error:
            await _whisper(respond, _unreachable(error))
            return
        if not await self._tracker.follow_again(tracking):
            await _whisper(
                respond, "Rhombus is making the clip again, but this message can't follow it."
            )

    # --- Slack ----------------------------------------------------------------------------------

    async def _zone(self, client: AsyncWebClient, user_id: str) -> tzinfo:
        return zone_of(*await self._user_zone(client, user_id))

    async def _user_zone(
        self, client: AsyncWebClient, user_id: str
    ) -> tuple[str | None, int | None]:
        """The person's Slack `tz` and `tz_offset` (`users.info`, scope users:read), if known."""
        try:
            answer = await client.users_info(user=user_id)
        except SlackApiError as error:
            logger.warning("users.info failed: %s; using UTC", error.response.get("error"))
            return None, None
        user = answer.get("user") or {}
        tz, offset = user.get("tz"), user.get("tz_offset")
        return (
            tz if isinstance(tz, str) else None,
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
        )

    async def _tell_user(self, made: MadeClip, text: str) -> None:
        await self._ephemeral(self._slack, made.channel_id, made.creator_id, text)

    async def _ephemeral(self, client: AsyncWebClient, channel: str, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as error:
            logger.warning("could not answer %s: %s", user, error.response.get("error"))

    async def _tracking_of(self, body: dict[str, Any]) -> Tracking | None:
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str((body.get("message") or {}).get("ts") or container.get("message_ts") or "")
        if not channel or not ts:
            return None
        return await self._tracker.tracking_for_message(channel, ts)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("making a clip failed")

        task = asyncio.create_task(run(), name="make-clip")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, seconds: float) -> None:
        """Wait for clips being made (up to `seconds`), then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)


def _split_camera(text: str) -> tuple[str, str]:
    """The camera (one word, or quoted) and the rest of the text."""
    text = text.strip()
    closing = _QUOTES.get(text[:1])
    if closing is not None:
        end = text.find(closing, 1)
        if end <= 1:
            raise WrongInput(
                "camera", 'The camera\'s name has no closing quote: `"Loading Dock North"`.'
            )
        return text[1:end], text[end + 1 :]
    camera, _, rest = text.partition(" ")
    return camera, rest


def _starting(made: MadeClip, visibility: str) -> Clip:
    """The clip as just asked for, while Rhombus does not know it yet."""
    return Clip(
        uuid=made.clip_id,
        title=made.title,
        status=ClipStatus.INITIATING,
        timestamp_ms=made.start_ms,
        duration_sec=made.duration_sec,
        device_uuids=[f"{made.camera_id}.v0"],
        access_settings=AccessSettings(visibility=Visibility(visibility)),
    )


def _user_of(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


async def _whisper(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def _unreachable(error: RhombusError) -> str:
    logger.warning("Rhombus call for a new clip failed: %s", error)
    return "Rhombus is unreachable right now; try again in a minute."
