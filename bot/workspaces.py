"""The Slack workspaces the bot acts in, each with its Slack client and its Rhombus organisation.

Everything that speaks to Slack or Rhombus for a tracking, a click or a page of the Home asks here
with the workspace's team id. A single-workspace bot (`SLACK_BOT_TOKEN`, `RHOMBUS_API_KEY`) has
one workspace that answers for every team; an installed app (`bot.installed`) has one per
installation, each with the organisation its admins connected, or none yet.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.rhombus import RhombusError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from slack_sdk.web.async_client import AsyncWebClient

    from bot.directory import Directory
    from bot.feed import ClipFeed
    from bot.rhombus import RhombusClient

# What people are told when their workspace has no Rhombus organisation connected.
NOT_CONNECTED = (
    "Rhombus isn't connected to this workspace yet: a workspace admin can connect it "
    "in this app's *Home* tab (*Connect Rhombus*)."
)
_SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")


def not_connected(team_id: str, app_id: object) -> str:
    """NOT_CONNECTED, its Home tab a link that opens it when the app's id is known."""
    if not isinstance(app_id, str) or not _SLACK_ID.fullmatch(app_id):
        return NOT_CONNECTED
    if not _SLACK_ID.fullmatch(team_id):
        return NOT_CONNECTED
    home = f"<slack://app?team={team_id}&id={app_id}&tab=home|Home tab>"
    return NOT_CONNECTED.replace("*Home* tab", f"*{home}*")


@dataclass(eq=False)
class Organisation:
    """A Rhombus organisation as the bot reaches it: its client (and budget), feed and cameras."""

    client: RhombusClient
    feed: ClipFeed
    directory: Directory
    console_url: str  # the console of its region, for links people open
    media_url: str  # where its region serves clip media

    async def aclose(self) -> None:
        """Stop its feed's refreshes and close its connections."""
        self.feed.close()
        await self.client.aclose()


@dataclass(eq=False)
class Workspace:
    """One Slack workspace: the client with its bot token, and its Rhombus organisation if any."""

    team_id: str
    slack: AsyncWebClient
    organisation: Organisation | None


class NotConnectedError(RhombusError):
    """The workspace has no Rhombus organisation connected (or is not installed)."""

    def __init__(self, team_id: str) -> None:
        super().__init__(NOT_CONNECTED)
        self.team_id = team_id


class Workspaces(ABC):
    """Each workspace the bot acts in, by team id."""

    @abstractmethod
    def get(self, team_id: str) -> Workspace | None:
        """The workspace of `team_id`, or None when the app is not installed there."""

    @abstractmethod
    def organisations(self) -> Iterator[Organisation]:
        """Every Rhombus organisation connected now."""

    def slack(self, team_id: str) -> AsyncWebClient | None:
        """The Slack client with the workspace's bot token; None when not installed."""
        workspace = self.get(team_id)
        return None if workspace is None else workspace.slack

    def organisation(self, team_id: str) -> Organisation | None:
        """The workspace's Rhombus organisation; None when none is connected."""
        workspace = self.get(team_id)
        return None if workspace is None else workspace.organisation

    def rhombus(self, team_id: str) -> Organisation:
        """The workspace's Rhombus organisation, or NotConnectedError."""
        organisation = self.organisation(team_id)
        if organisation is None:
            raise NotConnectedError(team_id)
        return organisation

    def when_final(self, poll_now: Callable[[set[str]], None]) -> None:
        """Give every organisation's feed (those built later too) what to call with ended clips."""
        for organisation in self.organisations():
            organisation.feed.on_final = poll_now

    async def aclose(self) -> None:
        """Close every Rhombus organisation's connections."""
        for organisation in list(self.organisations()):
            await organisation.aclose()


class OneWorkspace(Workspaces):
    """A single-workspace bot: one Slack token and one Rhombus key serve whatever team asks."""

    def __init__(self, only: Workspace) -> None:
        self.only = only

    def get(self, team_id: str) -> Workspace | None:  # noqa: ARG002  # one workspace serves all
        """The one workspace."""
        return self.only

    def organisations(self) -> Iterator[Organisation]:
        """Its Rhombus organisation."""
        if self.only.organisation is not None:
            yield self.only.organisation
