"""The workspaces that installed the app, each with the Rhombus organisation its admins connected.

The installations (bot tokens) and Rhombus connections live in the database; each replica keeps
the workspaces in memory, so a poll or an edit finds its clients without a query. A workspace is
read again when something about it changes: an install, Connect Rhombus, an uninstall. The
replica where it changed tells the others (a PostgreSQL NOTIFY), and every replica reads it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.directory import Directory
from bot.feed import ClipFeed
from bot.rhombus import RhombusClient
from bot.workspaces import Organisation, Workspace, Workspaces

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from pydantic import SecretStr
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.config import RegionUrls
    from bot.rhombus_keys import Region

logger = logging.getLogger(__name__)

# The NOTIFY payload saying a workspace changed: "workspace:<team id>".
NOTICE_PREFIX = "workspace:"


class Connection(Protocol):
    """A workspace's Rhombus connection, as `bot.rhombus_keys` stores it."""

    @property
    def api_key(self) -> SecretStr: ...  # noqa: D102
    @property
    def region(self) -> Region: ...  # noqa: D102
    @property
    def auth_scheme(self) -> str: ...  # noqa: D102
    @property
    def client_org(self) -> str | None: ...  # noqa: D102


class Tokens(Protocol):
    """The installations' bot tokens (`bot.installations`)."""

    async def bot_token(self, team_id: str, enterprise_id: str | None = None) -> str | None:
        """The workspace's bot token, refreshed when it rotates; None when not installed."""
        ...

    async def teams(self) -> list[str]:
        """Every installed workspace."""
        ...


class Keys(Protocol):
    """The workspaces' Rhombus connections (`bot.rhombus_keys`)."""

    async def get(self, team_id: str) -> Connection | None:
        """The workspace's connection; None when none is connected."""
        ...


@dataclass(frozen=True)
class OrganisationSettings:
    """How every organisation's client, feed and budget are built."""

    regions: Mapping[str, RegionUrls]
    timeout: float
    calls_per_second: float
    max_age: float  # how old a page of clips may be before a poll asks again


class InstalledWorkspaces(Workspaces):
    """Every installed workspace by team id, with its own bot token and Rhombus organisation."""

    def __init__(
        self,
        *,
        tokens: Tokens,
        keys: Keys,
        slack: Callable[[str], AsyncWebClient],
        settings: OrganisationSettings,
        watch: Callable[[RhombusClient], None] = lambda _client: None,
    ) -> None:
        self._tokens = tokens
        self._keys = keys
        self._slack = slack  # a Slack client with that bot token
        self._settings = settings
        self._watch = watch  # counts each new Rhombus client's calls (bot.metrics)
        self._workspaces: dict[str, Workspace] = {}
        self._connected: dict[str, tuple[str, ...]] = {}  # what each organisation was built from
        # Given each new organisation's feed, so its final clips are polled at once.
        self.on_final: Callable[[set[str]], None] | None = None

    def get(self, team_id: str) -> Workspace | None:
        """The workspace of `team_id`, or None when the app is not installed there."""
        return self._workspaces.get(team_id)

    def organisations(self) -> Iterator[Organisation]:
        """Every Rhombus organisation connected now."""
        for workspace in list(self._workspaces.values()):
            if workspace.organisation is not None:
                yield workspace.organisation

    def when_final(self, poll_now: Callable[[set[str]], None]) -> None:
        """Give every organisation's feed, now and built later, what to call with ended clips."""
        self.on_final = poll_now
        super().when_final(poll_now)

    def teams(self) -> Iterable[str]:
        """Every workspace known now."""
        return list(self._workspaces)

    async def load_all(self) -> int:
        """Read every installed workspace; how many there are."""
        for team_id in await self._tokens.teams():
            await self.load(team_id)
        return len(self._workspaces)

    async def load(self, team_id: str) -> Workspace | None:
        """Read the workspace again (token, Rhombus connection); None when not installed."""
        token = await self._tokens.bot_token(team_id)
        if token is None:
            await self.drop(team_id)
            return None
        workspace = self._workspaces.get(team_id)
        if workspace is None:
            workspace = self._workspaces[team_id] = Workspace(team_id, self._slack(token), None)
        else:
            workspace.slack.token = token  # a rotated token replaces the old one in place
        connection = await self._keys.get(team_id)
        wanted = _fingerprint(connection)
        if wanted != self._connected.get(team_id, ()):
            old, workspace.organisation = workspace.organisation, None
            if old is not None:
                await old.aclose()
            if connection is not None:
                workspace.organisation = self._organisation(connection)
            self._connected[team_id] = wanted
            logger.info(
                "workspace %s: Rhombus %s",
                team_id,
                f"connected ({connection.region})" if connection else "not connected",
            )
        return workspace

    async def drop(self, team_id: str) -> None:
        """Forget the workspace (uninstalled) and close its Rhombus organisation."""
        workspace = self._workspaces.pop(team_id, None)
        self._connected.pop(team_id, None)
        if workspace is not None and workspace.organisation is not None:
            await workspace.organisation.aclose()

    async def refresh_tokens(self) -> None:
        """Read every workspace's token again: rotated tokens are refreshed before they expire."""
        for team_id in list(self._workspaces):
            token = await self._tokens.bot_token(team_id)
            workspace = self._workspaces.get(team_id)
            if token is None:
                await self.drop(team_id)
            elif workspace is not None:
                workspace.slack.token = token

    def _organisation(self, connection: Connection) -> Organisation:
        region = self._settings.regions[connection.region]
        client = RhombusClient(
            api_key=connection.api_key.get_secret_value(),
            base_url=region.api,
            auth_scheme=connection.auth_scheme,
            org_uuid=connection.client_org,
            timeout=self._settings.timeout,
            calls_per_second=self._settings.calls_per_second,
        )
        self._watch(client)
        feed = ClipFeed(client, max_age=self._settings.max_age)
        feed.on_final = self.on_final
        return Organisation(
            client=client,
            feed=feed,
            directory=Directory(client),
            console_url=region.console,
            media_url=region.media,
        )


def _fingerprint(connection: Connection | None) -> tuple[str, ...]:
    """What an organisation is built from: a change in any of it builds a new one."""
    if connection is None:
        return ()
    return (
        connection.api_key.get_secret_value(),
        connection.region,
        connection.auth_scheme,
        connection.client_org or "",
    )


def workspace_notice(team_id: str) -> str:
    """The NOTIFY payload telling every replica to read the workspace again."""
    return f"{NOTICE_PREFIX}{team_id}"


def read_workspace_notice(payload: str) -> str | None:
    """The team id a workspace notice names, or None when the payload is not one."""
    if not payload.startswith(NOTICE_PREFIX):
        return None
    team_id = payload.removeprefix(NOTICE_PREFIX)
    return team_id if team_id.isalnum() and len(team_id) <= 32 else None
