"""The Slack side: the Bolt app, the `/clip` command's forms, and every listener attached."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.channel_clips import ChannelClips
from bot.events import OnceEach
from bot.following import Following
from bot.home import Home, HomeSettings
from bot.home_view import ACTION_FOLLOW as ACTION_HOME_FOLLOW
from bot.home_view import ACTION_MORE as ACTION_HOME_MORE
from bot.home_view import ACTION_OPEN as ACTION_HOME_OPEN
from bot.home_view import FOLLOW_MODAL
from bot.making import USAGE as MAKING_USAGE
from bot.making_buttons import MadeButtons
from bot.making_views import CAMERA_ACTION, MODAL_CALLBACK
from bot.moment_clips import MomentClips
from bot.policy import Asker, Policy
from bot.status_message import (
    ACTION_CANCEL,
    ACTION_OPEN,
    ACTION_REFRESH,
    ACTION_RETRY,
    ACTION_STOP,
)
from bot.unfurl_view import ACTION_UNFURL_CLIP, ACTION_UNFURL_OPEN
from bot.workspaces import not_connected

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from slack_bolt.authorization.async_authorize import AsyncAuthorize
    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.blocks import JsonBlock
    from bot.making import Making
    from bot.store import Store
    from bot.tracker import Tracker
    from bot.unfurls import Unfurls
    from bot.workspaces import Workspaces

    # One form of `/clip` (`/clip list`, ...): given who asks, the text after its first word, and
    # Bolt's `respond` and context, once the command is acknowledged and the person may use it.
    Form = Callable[[Asker, str, AsyncRespond, AsyncBoltContext], Awaitable[None]]

logger = logging.getLogger(__name__)

SHORTCUT_CALLBACK_ID = "track_clip"
HELP_WORDS = frozenset({"help", "-h", "--help", "?"})


def usage(max_clips: int) -> str:
    """The help text for `/clip`: every form, with examples."""
    return (
        "*Follow a Rhombus clip in this channel*\n"
        "`/clip &lt;clip id or link&gt;` posts a status message here and keeps it up to date "
        "until the clip is ready, has failed or is deleted.\n"
        f"• Up to {max_clips} clips at once, separated by spaces: "
        "`/clip AbCdEfGhIjKlMnOpQrStUv https://console.rhombussystems.com/…`\n"
        "• A clip id is the 22-character id of a saved clip in Rhombus, "
        "or paste a link that contains it.\n"
        "• `/clip list` shows the clips followed in this channel.\n"
        "• `/clip stop &lt;clip id or link&gt;` stops following one here "
        "(`/clip stop AbCdEfGhIjKlMnOpQrStUv`); `/clip stop all` stops every one.\n"
        "• `/clip help` shows this.\n"
        "• On a message that mentions clips, use the *Follow Rhombus clip* shortcut "
        "(the ⋮ menu) to follow them in its thread.\n"
        f"• {MAKING_USAGE}\n"
        "• The bot's *Home* tab lists the clips you follow and the organisation's recent "
        "clips; Rhombus links pasted in a message show the clip's status, or the camera at that "
        "moment with *Follow a clip of this*."
    )


def register_listeners(  # noqa: PLR0913
    app: AsyncApp,
    tracker: Tracker,
    workspaces: Workspaces,
    policy: Policy,
    *,
    store: Store,
    home_settings: HomeSettings,
    unfurls: Unfurls,
    making: Making | None = None,
    home_top: Callable[[str, str], Awaitable[list[JsonBlock]]] | None = None,
) -> Home:
    """Attach every listener of the bot to the Bolt app; the Home, for shutdown to close."""
    following = Following(tracker, workspaces, policy)
    channel_clips = ChannelClips(tracker, store)
    forms: dict[str, Form] = {"list": channel_clips.list_here, "stop": channel_clips.stop_here}
    if making is not None:
        forms["new"] = making.new_text
        app.view(MODAL_CALLBACK)(making.submit_modal)
        app.options(CAMERA_ACTION)(making.camera_options)
        buttons = MadeButtons(tracker, workspaces, making, policy)
        app.action(ACTION_CANCEL)(buttons.cancel)
        app.action(ACTION_RETRY)(buttons.retry)
        app.action(ACTION_UNFURL_CLIP)(MomentClips(making, policy).clicked)
    command = ClipCommand(
        policy,
        forms=forms,
        follow=following.follow_text,
        connected=lambda team_id: workspaces.organisation(team_id) is not None,
    )
    app.command("/clip")(command.handle)
    app.shortcut(SHORTCUT_CALLBACK_ID)(following.track_shortcut)
    app.action(ACTION_REFRESH)(following.refresh_button)
    app.action(ACTION_STOP)(following.stop_button)
    app.action(ACTION_OPEN)(following.open_button)
    app.error(on_error)
    app.middleware(OnceEach().check)
    home = Home(
        workspaces=workspaces,
        store=store,
        tracker=tracker,
        following=following,
        policy=policy,
        settings=home_settings,
        top=home_top,
    )
    app.event("app_home_opened")(home.opened)
    app.action(ACTION_HOME_MORE)(home.more)
    app.action(ACTION_HOME_FOLLOW)(home.follow_button)
    app.action(ACTION_HOME_OPEN)(home.open_button)
    app.view(FOLLOW_MODAL)(home.follow_submitted)
    app.event("link_shared")(unfurls.shared)
    app.action(ACTION_UNFURL_OPEN)(unfurls.open_button)
    return home


class ClipCommand:
    """`/clip`: help, a form named by its first word (`/clip list`), or clips to follow."""

    def __init__(
        self,
        policy: Policy,
        *,
        forms: Mapping[str, Form],
        follow: Form,
        connected: Callable[[str], bool] = lambda _team_id: True,
    ) -> None:
        self._policy = policy
        self._forms = forms
        self._follow = follow
        self._connected = connected  # whether a workspace has its Rhombus organisation

    async def handle(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        """Acknowledge, check who asks, and run the form asked for."""
        await ack()
        text = str(command.get("text") or "").strip()
        if not text or text.lower() in HELP_WORDS:
            await respond(text=usage(self._policy.max_clips), response_type="ephemeral")
            return
        asker = Asker(
            team_id=str(command.get("team_id") or context.team_id or ""),
            channel_id=str(command.get("channel_id") or ""),
            user_id=str(command.get("user_id") or ""),
        )
        if refusal := self._policy.refusal(asker):
            await respond(text=refusal, response_type="ephemeral")
            return
        if not self._connected(asker.team_id):
            answer = not_connected(asker.team_id, command.get("api_app_id"))
            await respond(text=answer, response_type="ephemeral")
            return
        word, _, rest = text.partition(" ")
        form = self._forms.get(word.lower())
        # A form may open a modal, which needs the command's trigger (valid for 3 s).
        context["trigger_id"] = command.get("trigger_id")
        if form is None:
            await self._follow(asker, text, respond, context)
        else:
            await form(asker, rest.strip(), respond, context)


async def on_error(error: Exception, body: dict[str, Any]) -> None:
    """Log anything a listener did not handle, with its traceback."""
    logger.error(
        "unhandled error in a Slack listener (type %s)",
        body.get("type") or body.get("command"),
        exc_info=error,
    )


def build_app(
    client: AsyncWebClient,
    signing_secret: str | None,
    *,
    oauth: AsyncOAuthSettings | None = None,
    authorize: AsyncAuthorize | None = None,
) -> AsyncApp:
    """A Bolt app using `client` for Slack calls; signing_secret None means Socket Mode.

    In HTTP mode the endpoint answers commands and clicks itself, so Bolt runs each listener
    to its end before returning: shutdown can then wait for it. With `oauth`, any workspace
    installs the app, and `authorize` finds each request's workspace token.
    """
    http_mode = signing_secret is not None
    return AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=http_mode,
        process_before_response=http_mode,
        raise_error_for_unhandled_request=False,
        oauth_settings=oauth,
        authorize=authorize,  # type: ignore[arg-type]  # Bolt takes an AsyncAuthorize instance too
    )
