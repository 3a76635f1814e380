"""Installing into many workspaces: OAuth installs, Connect Rhombus, uninstalls, kept in step.

Turned on by SLACK_CLIENT_ID and SLACK_CLIENT_SECRET. Each workspace installs with "Add to
Slack" (`bot.installations`: tokens sealed in the bot's database), an admin connects its Rhombus
organisation from the App Home (`bot.connecting`, `bot.rhombus_keys`), and every Slack and
Rhombus call is made with that workspace's token and key (`bot.installed`). When a workspace
changes here (installed, connected, disconnected, uninstalled) every replica is told and reads it
again; the one following its clips stops them when it is gone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

from bot.clips import Ending
from bot.connect_view import home_section
from bot.connecting import Connecting
from bot.handover import CHANNEL
from bot.installations import Installations
from bot.installed import InstalledWorkspaces, OrganisationSettings, workspace_notice
from bot.metrics import MeteredWebClient
from bot.rhombus_keys import RhombusKeys
from bot.secret_box import SecretBox, SecretUnreadableError
from bot.store import StoreError
from bot.uninstalls import Uninstalls

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_bolt.async_app import AsyncApp
    from slack_bolt.oauth.async_callback_options import AsyncSuccessArgs
    from slack_bolt.response import BoltResponse

    from bot.blocks import JsonBlock
    from bot.config import Settings
    from bot.home import Home
    from bot.metrics import Metrics
    from bot.store import Store
    from bot.tracker import Tracker
    from bot.workspaces import Workspace

logger = logging.getLogger(__name__)

# What the app asks each workspace for; manifest.yml lists the same (tests/test_manifest.py).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "links:read",
    "links:write",
    "files:write",
    "channels:join",
    "files:read",
    "users:read",
)


class Distribution:
    """Everything that serves many workspaces, built once the database is open."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        installations: Installations,
        keys: RhombusKeys,
        workspaces: InstalledWorkspaces,
    ) -> None:
        self._settings = settings
        self._store = store
        self.installations = installations
        self.keys = keys
        self.workspaces = workspaces
        self.connecting = Connecting(
            keys=keys,
            installer=installations.installer,
            urls=lambda region: settings.region(region).api,
            on_change=self.changed,
        )
        self._tracker: Tracker | None = None
        self._home: Home | None = None
        self._tell_replicas = False

    @classmethod
    async def open(cls, settings: Settings, store: Store, metrics: Metrics) -> Distribution:
        """Read the installations and Rhombus connections, resealing what an older key sealed."""
        assert settings.encryption_keys is not None  # noqa: S101  # required with a client id
        box = SecretBox.from_setting(settings.encryption_keys.get_secret_value())
        installations = Installations.from_settings(
            settings,
            engine=store.engine,
            box=box,
            client=MeteredWebClient(metrics, base_url=settings.slack_api_url, timeout=10),
        )
        await installations.open()
        keys = RhombusKeys(store, box)
        try:
            resealed = await installations.reseal() + await keys.reseal_all()
        except SecretUnreadableError:
            raise StoreError(
                "cannot read the workspaces' stored tokens: none of ENCRYPTION_KEYS opens them. "
                "Put back the key that sealed them (first the new key, then the old one: "
                "NEW,OLD); drop an old key only once every replica has restarted with both."
            ) from None
        if resealed:
            logger.info("resealed %d stored secret(s) with the newest encryption key", resealed)
        workspaces = InstalledWorkspaces(
            tokens=installations,
            keys=keys,
            slack=lambda token: MeteredWebClient(
                metrics, token=token, base_url=settings.slack_api_url, timeout=10
            ),
            settings=OrganisationSettings(
                regions={"US": settings.region("US"), "EU": settings.region("EU")},
                timeout=settings.rhombus_timeout_seconds,
                calls_per_second=settings.rhombus_calls_per_second,
                max_age=settings.poll_interval_seconds * 0.9,
            ),
            watch=metrics.watch_rhombus,
        )
        count = await workspaces.load_all()
        logger.info("serving %d installed workspace(s)", count)
        return cls(
            settings=settings,
            store=store,
            installations=installations,
            keys=keys,
            workspaces=workspaces,
        )

    def oauth_settings(self) -> AsyncOAuthSettings:
        """Bolt's OAuth flow: /slack/install and /slack/oauth_redirect on the bot's database."""
        settings = self._settings
        assert settings.slack_client_id is not None  # noqa: S101  # distribution is on
        assert settings.slack_client_secret is not None  # noqa: S101
        default = self.installations.callback_options()
        return AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=list(BOT_SCOPES),
            redirect_uri=settings.oauth_redirect_url,
            authorization_url=settings.slack_authorize_url,
            installation_store=self.installations.store,
            installation_store_bot_only=True,
            state_store=self.installations.state_store,
            callback_options=AsyncCallbackOptions(
                success=self._installed_then(default), failure=default.failure
            ),
        )

    def attach(self, app: AsyncApp, *, tracker: Tracker, home: Home | None) -> None:
        """Listen for Connect Rhombus and uninstalls; republish Homes when a workspace changes."""
        self._tracker, self._home = tracker, home
        self.connecting.register(app)
        uninstalls = Uninstalls(
            installations=self.installations,
            keys=self.keys,
            tracker=tracker,
            changed=self.changed,
        )
        app.event("app_uninstalled")(uninstalls.uninstalled)
        app.event("tokens_revoked")(uninstalls.tokens_revoked)

    def tell_replicas(self) -> None:
        """From now on, tell the other replicas (PostgreSQL NOTIFY) when a workspace changes."""
        self._tell_replicas = True

    async def home_top(self, team_id: str, user_id: str) -> list[JsonBlock]:
        """The top of a person's Home: the workspace's Rhombus connection (a button if they may)."""
        client = self.workspaces.slack(team_id)
        may = client is not None and await self.connecting.may_connect(client, team_id, user_id)
        return home_section(await self.keys.get(team_id), may_connect=may)

    async def changed(self, team_id: str, user_id: str = "") -> None:
        """A workspace changed here: read it again, act on it, and tell the other replicas."""
        installed = await self.heard(team_id)
        if (
            installed
            and self._tracker is not None
            and self.workspaces.organisation(team_id) is None
        ):
            # Rhombus disconnected: its clips can no longer be followed; say so in each message.
            for tracking in await self._store.unfinished(team_id):
                await self._tracker.stop(tracking.id, user_id)
        if self._tell_replicas:
            try:
                await self._store.notify(CHANNEL, workspace_notice(team_id))
            except StoreError as error:  # the others read it again at their next rescan
                logger.warning("could not tell the other replicas: %s", error)

    async def heard(self, team_id: str) -> bool:
        """Read the workspace again (told by another replica); whether it is still installed."""
        workspace = await self.workspaces.load(team_id)
        await self._act_on(team_id, workspace)
        return workspace is not None

    async def refresh(self) -> None:
        """Read every workspace again: tokens about to expire are refreshed, missed news read."""
        for team_id in set(self.workspaces.teams()) | set(await self.installations.teams()):
            before = self.workspaces.get(team_id)
            organisation = None if before is None else before.organisation
            workspace = await self.workspaces.load(team_id)
            if (workspace is None) != (before is None) or (
                workspace is not None and workspace.organisation is not organisation
            ):
                await self._act_on(team_id, workspace)  # news a lost notice did not bring

    async def _act_on(self, team_id: str, workspace: Workspace | None) -> None:
        """A workspace read again changed: its Homes show it; gone, its trackings end."""
        if workspace is None and self._tracker is not None:
            await self._tracker.end_team(team_id, Ending.UNINSTALLED)
        if self._home is not None:
            self._home.workspace_changed(team_id)

    async def close(self, seconds: float) -> None:
        """Let Connect Rhombus work under way finish."""
        await self.connecting.close(seconds)

    def _installed_then(
        self, default: AsyncCallbackOptions
    ) -> Callable[[AsyncSuccessArgs], Awaitable[BoltResponse]]:
        async def success(args: AsyncSuccessArgs) -> BoltResponse:
            team_id = args.installation.team_id
            if team_id:
                logger.info("installed in workspace %s", team_id)
                await self.changed(team_id)
            return await default.success(args)

        return success
