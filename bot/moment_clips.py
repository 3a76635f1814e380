"""**Follow a clip of this** on a camera unfurl: a minute around its moment, in the link's thread.

The clip is made exactly as `/clip new` makes clips, and followed in the thread of the message
that holds the link.

Buttons in an unfurl send `block_actions` without `message`: the channel and the link's message
come from `container` (type `message_attachment`, `is_app_unfurl`), the thread from the value
the bot wrote (https://docs.slack.dev/messaging/unfurling-links-in-messages).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.making import unreachable
from bot.orders import order_around
from bot.policy import Asker
from bot.rhombus import RhombusError
from bot.unfurl_view import MomentClip
from bot.when import WrongInput

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.making import Making
    from bot.policy import Policy

logger = logging.getLogger(__name__)

NOT_OURS = "This button is not one I can act on; paste the camera link again."


class MomentClips:
    """Makes the clip a camera unfurl's button asks for, and follows it in the link's thread."""

    def __init__(self, making: Making, policy: Policy) -> None:
        self._making = making
        self._policy = policy

    async def clicked(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Acknowledge, check who clicked and what the button says, then make and follow."""
        await ack()
        container, team, user = (_object(body.get(key)) for key in ("container", "team", "user"))
        channel = str(container.get("channel_id") or _object(body.get("channel")).get("id") or "")
        message_ts = str(container.get("message_ts") or "")
        user_id = str(user.get("id") or "")
        if not channel or not user_id:
            logger.info("Follow a clip of this without a channel or a person; ignored")
            return
        actions = body.get("actions")
        action = _object(actions[0]) if isinstance(actions, list) and actions else {}
        wanted = MomentClip.read(action.get("value"))
        # The link's own thread when it was posted in one: the person reads there.
        in_thread = wanted.thread_ts if wanted else None
        asker = Asker(
            team_id=str(team.get("id") or user.get("team_id") or ""),
            channel_id=channel,
            user_id=user_id,
            thread_ts=in_thread or message_ts or None,
        )

        async def tell(text: str) -> None:
            try:
                await client.chat_postEphemeral(
                    channel=channel, user=user_id, text=text, thread_ts=in_thread
                )
            except SlackApiError as error:
                logger.warning("could not answer %s: %s", user_id, error.response.get("error"))

        if wanted is None:
            await tell(NOT_OURS)
            return
        if refusal := self._policy.refusal(asker) or self._policy.creation_refusal(asker):
            await tell(refusal)
            return
        try:
            known = await self._making.known_for(client, asker.team_id, user_id)
            order = order_around(wanted.moment.camera_id, wanted.moment.at_ms, known)
        except WrongInput as wrong:
            await tell(str(wrong))
            return
        except RhombusError as error:
            await tell(unreachable(error))
            return
        await self._making.make(asker, order, tell)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
