"""Connecting a workspace's Rhombus organisation from the App Home: who may, the modal, the check.

A workspace admin or owner (`users.info`), or the person who installed the app, opens "Connect
Rhombus", gives the key, region, kind of key and a partner's client organisation. The key is
checked with one Rhombus call before it is stored; what is wrong comes back under the modal's
fields within Slack's 3 s. Changing or removing it is the same modal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.budget import Priority
from bot.connect_view import (
    ACTION_CONNECT,
    CLIENT_BLOCK,
    CONNECT_MODAL,
    KEY_BLOCK,
    REGION_BLOCK,
    parse_submission,
    refusal_modal,
    render_modal,
    who_may_connect,
)
from bot.jobs import Background
from bot.rhombus import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RhombusClient,
    RhombusError,
    UnavailableError,
)
from bot.rhombus_keys import AUTH_SCHEMES, RhombusConnection

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.rhombus_keys import Region, RhombusKeys

logger = logging.getLogger(__name__)

# Slack waits 3 s for a modal's answer: the check gets most of it, Slack and the database the rest.
CHECK_SECONDS = 2.0
NOT_ALLOWED = (
    "Only a workspace admin or owner, or the person who installed the app, can connect Rhombus."
)
OTHER_REGION: dict[str, str] = {"US": "EU", "EU": "US"}


class Connecting:
    """The Connect Rhombus listeners: the Home's button opens the modal, its submission saves."""

    def __init__(  # noqa: PLR0913  # what connecting touches, each given by the wiring
        self,
        *,
        keys: RhombusKeys,
        installer: Callable[[str], Awaitable[str | None]],
        urls: Callable[[Region], str],
        on_change: Callable[[str, str], Awaitable[None]],
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Connect through `keys`, with what the wiring knows of each workspace and region.

        `installer(team_id)`: who installed the app there; `urls(region)`: Rhombus's API
        address in that region; `on_change(team_id, user_id)`: called once a workspace's key
        changed, with who changed it.
        """
        self._keys = keys
        self._installer = installer
        self._urls = urls
        self._on_change = on_change
        self._check_seconds = check_seconds
        self._clock = clock
        self._background = Background("acting on a Rhombus connection change")

    def register(self, app: AsyncApp) -> None:
        """Attach the listeners: the Home's Connect/Change button and the modal's submission."""
        app.action(ACTION_CONNECT)(self.open_modal)
        app.view(CONNECT_MODAL)(self.submit)

    async def may_connect(self, client: AsyncWebClient, team_id: str, user_id: str) -> bool:
        """Whether the person may connect Rhombus: an admin or owner, or the app's installer."""
        if not team_id or not user_id:
            return False
        if user_id == await self._installer(team_id):
            return True
        try:
            answer = await client.users_info(user=user_id)
        except SlackApiError as error:
            logger.warning(
                "users.info failed: %s; only the installer may connect Rhombus",
                error.response.get("error"),
                extra={"team": team_id},
            )
            return False
        user = _object(answer.get("user"))
        # https://docs.slack.dev/reference/objects/user-object: is_admin, is_owner and
        # is_primary_owner are true for workspace admins and owners, false for everyone else.
        return any(user.get(flag) is True for flag in ("is_admin", "is_owner", "is_primary_owner"))

    async def open_modal(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The Home's button: the modal for those who may, else who may (trigger valid 3 s)."""
        await ack()
        team_id, user_id = _team_and_user(body)
        if await self.may_connect(client, team_id, user_id):
            view = render_modal(await self._keys.get(team_id))
        else:
            view = refusal_modal(who_may_connect(await self._installer(team_id)))
        try:
            await client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        except SlackApiError as error:
            logger.warning("views.open failed: %s", error.response.get("error"))

    async def submit(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The modal submitted: who, the fields, then the key with Rhombus; save, or say why not."""
        team_id, user_id = _team_and_user(body)
        if not await self.may_connect(client, team_id, user_id):
            await ack(response_action="errors", errors={KEY_BLOCK: NOT_ALLOWED})
            return
        current = await self._keys.get(team_id)
        state = _object(_object(body.get("view")).get("state")).get("values")
        request = parse_submission(state, connected=current is not None)
        if isinstance(request, dict):
            await ack(response_action="errors", errors=request)
            return
        if request.disconnect:
            await self._keys.remove(team_id)
            await ack()
            logger.info("Rhombus disconnected by %s", user_id, extra={"team": team_id})
            self._changed(team_id, user_id)
            return
        key = request.api_key or (current.api_key if current else None)
        if key is None:  # parse_submission asks for a key when none is stored
            await ack(response_action="errors", errors={KEY_BLOCK: "Paste the API key."})
            return
        connection = RhombusConnection(
            team_id=team_id,
            api_key=key,
            region=request.region,
            kind=request.kind,
            client_org=request.client_org,
            connected_by=user_id,
            connected_at=self._clock(),
        )
        if problems := await self._check(connection):
            await ack(response_action="errors", errors=problems)
            return
        try:
            await self._keys.put(connection)
        except SQLAlchemyError:
            logger.exception("could not store the Rhombus connection", extra={"team": team_id})
            await ack(response_action="errors", errors={KEY_BLOCK: _SAVE_FAILED})
            return
        await ack()
        logger.info(
            "Rhombus connected by %s (%s, %s key)",
            user_id,
            connection.region,
            connection.kind,
            extra={"team": team_id},
        )
        self._changed(team_id, user_id)

    async def _check(self, connection: RhombusConnection) -> dict[str, str] | None:
        """Ask Rhombus for one clip with the key: None when it answers, else the fields' errors.

        The clip list is the call the bot lives on, and proves the key, its region and, for a
        partner key, its client organisation in one small answer.
        """
        try:
            async with (
                asyncio.timeout(self._check_seconds),
                RhombusClient(
                    api_key=connection.api_key.get_secret_value(),
                    base_url=self._urls(connection.region),
                    auth_scheme=AUTH_SCHEMES[connection.kind],
                    org_uuid=connection.client_org,
                    timeout=self._check_seconds,
                ) as rhombus,
            ):
                await rhombus.get_clips_page(page_size=1, priority=Priority.LOOKUP)
        except TimeoutError:
            return {KEY_BLOCK: _SLOW}
        except RhombusError as error:
            return _problems(error, connection)
        return None

    def _changed(self, team_id: str, user_id: str) -> None:
        """Run `on_change` after Slack has its answer (the modal closes meanwhile)."""
        self._background.spawn(self._on_change(team_id, user_id))

    async def close(self, seconds: float) -> None:
        """Wait for `on_change` calls under way (up to `seconds`), then cancel the rest."""
        await self._background.close(seconds)


_SLOW = "Rhombus did not answer in time, so the key is not checked yet; try again in a moment."
_SAVE_FAILED = "The key is good, but it could not be saved; try again in a moment."


def _problems(error: RhombusError, connection: RhombusConnection) -> dict[str, str]:
    """What a failed check means for the person, under the field to change."""
    if isinstance(error, AuthenticationError):
        return _refused(connection)
    if isinstance(error, RateLimitedError):
        seconds = max(1, round(error.retry_after))
        return {KEY_BLOCK: f"Rhombus is limiting this organisation's calls; try in {seconds} s."}
    if isinstance(error, RejectedError):
        logger.info("Rhombus refused to list clips for a new key: %s", error)
        return {
            KEY_BLOCK: "Rhombus accepted the key but would not list saved clips with it: "
            "give it permission to read clips."
        }
    if isinstance(error, UnavailableError):
        logger.warning("Rhombus unreachable while checking a key: %s", error)
        return {KEY_BLOCK: _SLOW}
    logger.warning("Rhombus answered a key check oddly: %s", error)
    return {KEY_BLOCK: "Rhombus answered something unexpected; try again in a minute."}


def _refused(connection: RhombusConnection) -> dict[str, str]:
    """Rhombus refused the credentials: a wrong key, another region, or a client not managed.

    Rhombus answers all three alike (403; RHOMBUS.md: "a 403 Invalid api key is often the wrong
    region"), so the message names each way it can be wrong.
    """
    region, other = connection.region, OTHER_REGION[connection.region]
    errors = {
        KEY_BLOCK: f"Rhombus did not accept this key in the {region} region. Check it is the "
        "whole key and still active.",
        REGION_BLOCK: f"If your organisation is on Rhombus's {other} servers, choose {other}.",
    }
    if connection.kind == "partner":
        errors[CLIENT_BLOCK] = "Check that this partner key manages this client organisation."
    return errors


def _team_and_user(body: dict[str, Any]) -> tuple[str, str]:
    user = _object(body.get("user"))
    team = _object(body.get("team"))
    view = _object(body.get("view"))
    team_id = team.get("id") or user.get("team_id") or view.get("team_id")
    user_id = user.get("id")
    return (
        team_id if isinstance(team_id, str) else "",
        user_id if isinstance(user_id, str) else "",
    )


def _object(value: object) -> dict[str, Any]:
    """A JSON object from a request, or an empty one when it is anything else."""
    return value if isinstance(value, dict) else {}
