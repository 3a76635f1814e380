"""Making clips from Slack: `/clip new`, its modal, and Cancel and Retry on the status message.

A clip is asked of Rhombus (`spliceV3`) only once what the person typed or picked is checked like
any other input; the clip it returns is then followed exactly as `/clip <id>` follows one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.blocks import date_token
from bot.cameras import footage
from bot.clips import AccessSettings, Clip, ClipStatus, Visibility, quote_for_reason
from bot.jobs import Background
from bot.made import MadeClip, MadeState
from bot.making_views import CAMERA_BLOCK, ModalContext, camera_options, read_values, render_modal
from bot.orders import EXAMPLE, Known, order_from_modal, order_from_text
from bot.policy import Asker
from bot.rhombus import RateLimitedError, RejectedError, RhombusError
from bot.rhombus_answers import Splice
from bot.tracker import AlreadyFollowing, NotPosted
from bot.when import WrongInput, describe_seconds, local_label, zone_of
from bot.workspaces import NotConnectedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, MutableMapping

    from slack_bolt.async_app import AsyncAck, AsyncRespond
    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.made import MadeClips
    from bot.orders import Order
    from bot.policy import Policy
    from bot.status_message import MadeFromSlack
    from bot.tracker import Tracker
    from bot.workspaces import Workspaces

    Tell = Callable[[str], Awaitable[None]]

logger = logging.getLogger(__name__)

USAGE = (
    "`/clip new &lt;camera&gt; &lt;start&gt; &lt;duration&gt; [title]` makes a clip from a "
    f"camera and follows it here, e.g. {EXAMPLE}; `/clip new` alone opens a form."
)


class Making:
    """Makes clips in Rhombus for people in Slack, and hands them to the tracker."""

    def __init__(  # noqa: PLR0913  # the parts making a clip touches
        self,
        *,
        tracker: Tracker,
        workspaces: Workspaces,
        policy: Policy,
        made_clips: MadeClips,
        shown: MutableMapping[str, MadeFromSlack],
        visibility: str = Visibility.ORG_WIDE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = tracker
        self._workspaces = workspaces
        self._policy = policy
        self._made = made_clips
        self._shown = shown  # shared with the tracker: what each message says of its clip
        self._visibility = visibility
        self._clock = clock
        self._background = Background("making a clip")

    @property
    def shown(self) -> MutableMapping[str, MadeFromSlack]:
        """What each status message of a made clip says of it, by clip id."""
        return self._shown

    # --- Starting -------------------------------------------------------------------------------

    async def load(self) -> None:
        """Know every clip made from Slack, before the tracker renders any of their messages."""
        for made in await self._made.all_made():
            if made.clip_id:
                self._shown[made.clip_id] = made.shown

    def retried(self, clip_id: str) -> None:
        """Rhombus is making the clip again (Retry): it may still say FAILED for a moment."""
        if (shown := self._shown.get(clip_id)) is not None:
            self._shown[clip_id] = dataclasses.replace(shown, retried_at=self._clock())

    async def recall(self, clip_ids: Collection[str]) -> None:
        """Know which of these clips were made from Slack, whichever replica made them.

        Called before a replica follows trackings another one started (a handover, a notice),
        so their messages keep saying how the clip was made.
        """
        unknown = [clip_id for clip_id in clip_ids if clip_id not in self._shown]
        if not unknown:
            return
        for made in await self._made.made_of(unknown):
            if made.clip_id and made.clip_id not in self._shown:
                self._shown[made.clip_id] = made.shown

    async def resume(
        self, teams: Callable[[str], bool] | None = None, *, made_before: float | None = None
    ) -> None:
        """After a crash: follow clips made but not posted; tell whoever asked when unsure.

        Only those of the workspaces `teams` accepts (default: all), asked for before
        `made_before` (default: any time): with several replicas, a request a live replica is
        still carrying out is not another's to settle.
        """
        for made in await self._made.unsettled():
            if (teams is not None and not teams(made.team_id)) or (
                made_before is not None and made.made_at >= made_before
            ):
                continue
            try:
                await self._settle(made)
            except Exception:  # one row must not stop the bot from starting; the next start retries
                logger.exception("could not settle clip request %s", made.id)

    async def _settle(self, made: MadeClip) -> None:
        if made.state == MadeState.SPLICING:
            await self._tell_user(
                made,
                f"The bot restarted while asking Rhombus for your clip "
                f"{quote_for_reason(made.title)}, so I can't tell whether it was made. Look in "
                "Rhombus's saved clips before asking again; `/clip <clip id>` follows one here.",
            )
            made.state = MadeState.TOLD
            await self._made.save(made)
        elif await self._made.tracked(made):
            made.state = MadeState.POSTED
            await self._made.save(made)
        else:
            logger.info("posting clip %s made before a restart", made.clip_id)
            tell = functools.partial(self._tell_user, made)
            await self._post(made, tell, await self._made.thread_of(made))

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
        client = context.client or self._workspaces.slack(asker.team_id)
        if client is None:
            return  # not installed: Slack would not have sent the command
        if not text:
            await self._open_modal(asker, str(context.get("trigger_id") or ""), client, tell)
            return
        if text.lower() in {"help", "-h", "--help", "?"}:
            await tell(USAGE)
            return
        try:
            order = order_from_text(
                text, await self.known_for(client, asker.team_id, asker.user_id)
            )
        except WrongInput as wrong:
            await tell(f"{wrong}\nFor example: {EXAMPLE}")
            return
        except RhombusError as error:
            await tell(unreachable(error))
            return
        await self.make(asker, order, tell)

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
        team = _object(body.get("team"))
        try:
            cameras = await self._workspaces.rhombus(str(team.get("id") or "")).directory.cameras()
        except RhombusError as error:
            logger.warning("camera list unavailable: %s", error)
            cameras = []
        await ack(options=camera_options(cameras, str(body.get("value") or "")))

    async def submit_modal(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The form submitted: errors under their fields, else close it and make the clip."""
        view, user, team = (_object(body.get(key)) for key in ("view", "user", "team"))
        context = ModalContext.load(view.get("private_metadata"))
        user_id = str(user.get("id") or "")
        team_id = str(team.get("id") or user.get("team_id") or "")
        if context is None:
            await ack()
            return
        asker = Asker(team_id=team_id, channel_id=context.channel_id, user_id=user_id)
        refusal = self._policy.refusal(asker) or self._policy.creation_refusal(asker)
        if refusal:
            await ack(response_action="errors", errors={CAMERA_BLOCK: refusal[:150]})
            return
        try:
            known = await self._known(team_id, context.tz, context.tz_offset)
        except RhombusError as error:
            await ack(response_action="errors", errors={CAMERA_BLOCK: unreachable(error)})
            return
        order = order_from_modal(read_values(_object(view.get("state")).get("values")), known)
        if isinstance(order, dict):
            await ack(response_action="errors", errors=order)
            return
        await ack()

        async def tell(message: str) -> None:
            await self._ephemeral(client, asker.channel_id, asker.user_id, message)

        self._background.spawn(self.make(asker, order, tell))

    # --- Making and posting ---------------------------------------------------------------------

    async def make(self, asker: Asker, order: Order, tell: Tell) -> None:
        """Check the footage, splice, record, then post and follow the status message.

        In the asker's thread when they have one; `tell` answers the person alone.
        """
        async with self._tracker.working():
            camera, wanted = order.camera, order.range
            start_sec = wanted.start_ms // 1000
            try:
                windows = await self._workspaces.rhombus(asker.team_id).client.presence_windows(
                    camera.uuid, start_sec, wanted.duration_sec
                )
            except RhombusError as error:
                await tell(unreachable(error))
                return
            recorded = footage(windows, start_sec, wanted.duration_sec)
            if recorded.none:
                when = date_token(start_sec) or f"{local_label(wanted.start, UTC)} UTC"
                await tell(
                    f"{quote_for_reason(camera.name)} recorded nothing from {when} for "
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
            await self._made.add(made, asker.thread_ts)
            if not await self._splice(made, order, tell):
                return
            if not camera.online:
                await tell(
                    f"⚠️ {quote_for_reason(camera.name)} is offline right now: its clip may wait "
                    "for it to reconnect before it uploads."
                )
            await self._post(made, tell, asker.thread_ts)

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
            made.clip_id = await self._workspaces.rhombus(made.team_id).client.splice(wanted)
        except RejectedError as error:
            made.state = MadeState.TOLD
            await self._made.save(made)
            await tell(f"Rhombus refused to make the clip: {quote_for_reason(str(error))[1:-1]}")
            return False
        except RateLimitedError as error:  # refused before anything was made
            made.state = MadeState.TOLD
            await self._made.save(made)
            await tell(f"Rhombus is busy; try again in {max(1, round(error.retry_after))} s.")
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

    async def _post(self, made: MadeClip, tell: Tell, thread_ts: str | None = None) -> None:
        clip_id = made.clip_id or ""
        try:
            clip = await self._workspaces.rhombus(made.team_id).client.get_clip(clip_id)
        except RhombusError:
            clip = _starting(made, self._visibility)  # not known yet, moments after the splice
        # Rhombus may not state a new clip's visibility yet: it is what the bot asked for.
        visibility = (
            Visibility(self._visibility)
            if clip.visibility is Visibility.UNKNOWN
            else clip.visibility
        )
        if visibility is not Visibility.ORG_WIDE and not self._policy.post_restricted_clips:
            made.state = MadeState.POSTED
            await self._made.save(made)
            seen_by = visibility.value.replace("_", " ").lower()
            await tell(
                f"Rhombus is making clip `{clip_id}`. It is {seen_by} in Rhombus, so I won't post "
                "it in the channel; find it in Rhombus's saved clips."
            )
            return
        result = await self._tracker.follow(
            team_id=made.team_id,
            channel_id=made.channel_id,
            thread_ts=thread_ts,
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

    # --- Slack ----------------------------------------------------------------------------------

    async def known_for(self, client: AsyncWebClient, team_id: str, user_id: str) -> Known:
        """What checking an order needs, in the person's Slack time zone."""
        return await self._known(team_id, *await self._user_zone(client, user_id))

    async def _known(self, team_id: str, tz: str | None, tz_offset: int | None) -> Known:
        """What checking an order needs: cameras, the longest clip, now, the person's zone."""
        directory = self._workspaces.rhombus(team_id).directory
        return Known(
            cameras=await directory.cameras(),
            max_duration=await directory.max_duration(),
            now=datetime.fromtimestamp(self._clock(), UTC),
            zone=zone_of(tz, tz_offset),
        )

    async def _user_zone(
        self, client: AsyncWebClient, user_id: str
    ) -> tuple[str | None, int | None]:
        """The person's Slack `tz` and `tz_offset` (`users.info`, scope users:read), if known."""
        try:
            answer = await client.users_info(user=user_id)
        except SlackApiError as error:
            logger.warning("users.info failed: %s; using UTC", error.response.get("error"))
            return None, None
        user = _object(answer.get("user"))
        tz, offset = user.get("tz"), user.get("tz_offset")
        return (
            tz if isinstance(tz, str) else None,
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
        )

    async def _tell_user(self, made: MadeClip, text: str) -> None:
        client = self._workspaces.slack(made.team_id)
        if client is not None:
            await self._ephemeral(client, made.channel_id, made.creator_id, text)

    async def _ephemeral(self, client: AsyncWebClient, channel: str, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as error:
            logger.warning("could not answer %s: %s", user, error.response.get("error"))

    async def close(self, seconds: float) -> None:
        """Wait for clips being made (up to `seconds`), then cancel the rest."""
        await self._background.close(seconds)


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


def _object(value: object) -> dict[str, Any]:
    """A JSON object from a request, or an empty one when it is anything else."""
    return value if isinstance(value, dict) else {}


def unreachable(error: RhombusError) -> str:
    """What to tell a person when Rhombus could not be asked; the error goes to the log."""
    if isinstance(error, NotConnectedError):
        return str(error)
    logger.warning("Rhombus call for a new clip failed: %s", error)
    return "Rhombus is unreachable right now; try again in a minute."
