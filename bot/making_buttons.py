"""A made clip's buttons: **Cancel** while Rhombus makes it, **Retry** once it failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.clips import Ending
from bot.making import unreachable
from bot.policy import Asker
from bot.rhombus import RejectedError, RhombusError
from bot.store import TrackingState

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncRespond

    from bot.making import Making
    from bot.policy import Policy
    from bot.store import Tracking
    from bot.tracker import Tracker
    from bot.workspaces import Workspaces


class MadeButtons:
    """Cancel (cancelSpliceV2) and Retry (retrySplice) for clips made from Slack."""

    def __init__(
        self,
        tracker: Tracker,
        workspaces: Workspaces,
        making: Making,
        policy: Policy,
    ) -> None:
        self._tracker = tracker
        self._workspaces = workspaces
        self._making = making  # which clips were made from Slack, on any replica
        self._policy = policy

    async def cancel(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """**Cancel**: Rhombus stops making the clip; the message ends "Cancelled by @x"."""
        await ack()
        tracking = await self._made_here(body, respond, "This clip is no longer being made here.")
        if tracking is None:
            return
        if tracking.state != TrackingState.FOLLOWING:
            await _whisper(respond, "This clip is already finished; it can't be cancelled.")
            return
        try:
            await self._workspaces.rhombus(tracking.team_id).client.cancel_splice(tracking.clip_id)
        except RejectedError as error:
            await _whisper(respond, f"Rhombus could not cancel the clip: {error}")
            return
        except RhombusError as error:
            await _whisper(respond, unreachable(error))
            return
        user_id = str((body.get("user") or {}).get("id") or "")
        await self._tracker.stop(tracking.id, user_id, ending=Ending.CANCELLED)

    async def retry(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """**Retry** on a failed clip: Rhombus makes it again; the same message follows it."""
        await ack()
        tracking = await self._made_here(
            body, respond, "This clip was not made from Slack, so I can't retry it."
        )
        if tracking is None:
            return
        if tracking.ending is not Ending.FAILED or tracking.state != TrackingState.FINISHED:
            await _whisper(respond, "Only a failed clip can be retried.")
            return
        try:
            await self._workspaces.rhombus(tracking.team_id).client.retry_splice(tracking.clip_id)
        except RejectedError as error:
            await _whisper(respond, f"Rhombus could not retry the clip: {error}")
            return
        except RhombusError as error:
            await _whisper(respond, unreachable(error))
            return
        # Rhombus may still say FAILED for a moment: the message waits for it to catch up.
        self._making.retried(tracking.clip_id)
        if not await self._tracker.follow_again(tracking):
            await _whisper(
                respond, "Rhombus is making the clip again, but this message can't follow it."
            )

    async def _made_here(
        self, body: dict[str, Any], respond: AsyncRespond, not_made: str
    ) -> Tracking | None:
        """The clicked message's tracking, if they may steer it and it was made from Slack.

        Else None, once the person was told why (`not_made`, when it was not made from Slack).
        """
        tracking = await self._tracking_of(body)
        if refusal := self._refusal(body, tracking):
            await _whisper(respond, refusal)
            return None
        if tracking is not None:
            await self._making.recall([tracking.clip_id])  # made on another replica, perhaps
        if tracking is None or tracking.clip_id not in self._making.shown:
            await _whisper(respond, not_made)
            return None
        return tracking

    def _refusal(self, body: dict[str, Any], tracking: Tracking | None) -> str | None:
        """Whether the person who clicked may make (so cancel or retry) clips there."""
        user = body.get("user")
        asker = Asker(
            team_id=tracking.team_id if tracking else "",
            channel_id=tracking.channel_id if tracking else "",
            user_id=str(user.get("id") or "") if isinstance(user, dict) else "",
        )
        return self._policy.refusal(asker) or self._policy.creation_refusal(asker)

    async def _tracking_of(self, body: dict[str, Any]) -> Tracking | None:
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str((body.get("message") or {}).get("ts") or container.get("message_ts") or "")
        if not channel or not ts:
            return None
        return await self._tracker.tracking_for_message(channel, ts)


async def _whisper(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)
