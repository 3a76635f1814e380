"""The workspaces the app is installed in: their tokens sealed at rest, rotated one at a time.

Slack's installations live in the bot's own database (slack_sdk's SQLAlchemy tables, SQLite or
PostgreSQL), so any replica finishes an install another began and finds any workspace's token.
Every token column is sealed with `SecretBox` as it is written and opened as it is read.

Token rotation (https://docs.slack.dev/authentication/using-token-rotation): a bot token then
expires every 12 hours and its refresh token is exchanged once; two replicas refreshing the same
workspace at once leave it with a refresh token Slack has revoked (slackapi/node-slack-sdk#2504).
So a refresh is serialised per workspace: an asyncio lock in the process and, on PostgreSQL, a
transaction-scoped advisory lock around re-read, refresh and save.

Enterprise Grid org-wide installs are refused: the bot keys everything by workspace, and an
org-wide install has none. The install is never stored; `callback_options` shows a page saying
to install into each workspace instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Final

from aiohttp import ClientError
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store.sqlalchemy import (
    AsyncSQLAlchemyInstallationStore,
    SQLAlchemyInstallationStore,
)
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from sqlalchemy import Column, MetaData, Table, Text, TypeDecorator, select, text, update

from bot.store import create_tables

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_bolt.oauth.async_callback_options import AsyncFailureArgs, AsyncSuccessArgs
    from slack_sdk.oauth.installation_store import Bot, Installation
    from slack_sdk.web.async_client import AsyncWebClient
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.config import Settings
    from bot.secret_box import SecretBox

logger = logging.getLogger(__name__)

TOKEN_COLUMNS: Final = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
# Refresh a token this long before it expires, as Bolt does by default.
ROTATE_BEFORE_SECONDS: Final = 2 * 60 * 60
# How long an install begun at /slack/install may take to come back (Bolt's default).
STATE_SECONDS: Final = 600
ORG_WIDE_PAGE: Final = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Install into a workspace</title></head>
<body>
<h1>This app is installed one workspace at a time</h1>
<p>It was about to be installed for a whole Enterprise Grid organisation. Each workspace connects
its own Rhombus organisation, so install it into each workspace that wants it instead: open the
install link again and pick a workspace rather than the organisation.</p>
</body></html>
"""


class OrgWideInstallRefusedError(BoltError):
    """An Enterprise Grid org-wide install: refused, the bot serves workspaces one by one."""


class TokenRefreshError(Exception):
    """A workspace's bot token has expired and Slack did not refresh it; the message says why."""


class _Sealed(TypeDecorator[str]):
    """A token column: sealed with the newest key when written, opened when read."""

    impl = Text  # a sealed token is longer than slack_sdk's VARCHAR(200)
    cache_ok = True

    def __init__(self, box: SecretBox) -> None:
        super().__init__()
        self.box = box  # named as the argument: SQLAlchemy's statement cache keys on it

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        return None if value is None else self.box.seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        return None if value is None else self.box.open(value)


class SealedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's async SQLAlchemy installation store, with every token sealed at rest.

    Saving seals `bot_token`, `bot_refresh_token`, `user_token` and `user_refresh_token`;
    finding opens them with whichever of the keys sealed them. An org-wide install is refused.
    """

    def __init__(self, client_id: str, engine: AsyncEngine, box: SecretBox) -> None:
        super().__init__(client_id=client_id, engine=engine, logger=logger)
        self.box = box
        sealed = _Sealed(box)
        for table in (self.bots, self.installations):
            # Same table and name, its token columns replaced by sealed ones.
            Table(
                table.name,
                self.metadata,
                *(Column(name, sealed) for name in TOKEN_COLUMNS if name in table.c),
                extend_existing=True,
            )
        # The same tables as stored, tokens left sealed: for resealing them with a new key.
        raw = MetaData()
        self._raw_tables = (
            SQLAlchemyInstallationStore.build_bots_table(raw, self.bots.name),
            SQLAlchemyInstallationStore.build_installations_table(raw, self.installations.name),
        )

    async def async_save(self, installation: Installation) -> None:
        """Store an install (and its bot); OrgWideInstallRefusedError for an org-wide one."""
        if installation.is_enterprise_install:
            raise OrgWideInstallRefusedError("org-wide installs are refused")
        await super().async_save(installation)

    async def reseal(self) -> int:
        """Reseal with the newest key every token an older key sealed; how many there were.

        Run at start after a new key was put first in ENCRYPTION_KEYS; once it has run, the
        old key can be dropped. A token changed meanwhile (a refresh) is left as written.
        SecretUnreadableError if a token opens with none of the keys.
        """
        resealed = 0
        async with self.engine.begin() as connection:
            for table in self._raw_tables:
                columns = [table.c[name] for name in TOKEN_COLUMNS if name in table.c]
                rows = (await connection.execute(select(table.c.id, *columns))).all()
                for row in rows:
                    for column in columns:
                        sealed = row._mapping[column]  # noqa: SLF001 - SQLAlchemy's public API
                        if sealed is None or self.box.is_current(sealed):
                            continue
                        done = await connection.execute(
                            update(table)
                            .where(table.c.id == row.id, column == sealed)
                            .values({column.key: self.box.reseal(sealed)})
                        )
                        resealed += done.rowcount
        return resealed


class Installations:
    """Every workspace's installation: the stores Bolt's OAuth flow uses, and tokens for jobs."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        box: SecretBox,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
    ) -> None:
        """`client` calls Slack (oauth.v2.access to refresh tokens); it needs no token."""
        self._engine = engine
        self.store = SealedInstallationStore(client_id, engine, box)
        self.state_store = AsyncSQLAlchemyOAuthStateStore(
            expiration_seconds=STATE_SECONDS, engine=engine, logger=logger
        )
        self._rotator = AsyncTokenRotator(
            client_id=client_id, client_secret=client_secret, client=client
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self.authorize = InstallationAuthorize(self)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: AsyncEngine, box: SecretBox, client: AsyncWebClient
    ) -> Installations:
        """The installations of the app SLACK_CLIENT_ID and SLACK_CLIENT_SECRET name."""
        if settings.slack_client_id is None or settings.slack_client_secret is None:
            raise ValueError("one workspace (no SLACK_CLIENT_ID) has no installations")
        return cls(
            engine=engine,
            box=box,
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            client=client,
        )

    async def open(self) -> None:
        """Create the installation, bot and OAuth state tables where they are missing."""
        await create_tables(self._engine, self.store.metadata, self.state_store.metadata)

    async def reseal(self) -> int:
        """Reseal every token an older key sealed (see SealedInstallationStore.reseal)."""
        return await self.store.reseal()

    async def bot(self, team_id: str, enterprise_id: str | None = None) -> Bot | None:
        """The workspace's bot installation, its token refreshed if it expires within 2 hours.

        None: the app is not installed there. TokenRefreshError: the token has expired and
        Slack would not refresh it (while it still works, a failed refresh keeps it).
        """
        bot = await self._find_bot(team_id, enterprise_id)
        if bot is None or not _expiring(bot):
            return bot
        async with self._lock(team_id), self._database_lock(team_id):
            # Another task or replica may have refreshed it while this one waited.
            bot = await self._find_bot(team_id, bot.enterprise_id)
            if bot is None or not _expiring(bot):
                return bot
            return await self._refresh(bot)

    async def bot_token(self, team_id: str, enterprise_id: str | None = None) -> str | None:
        """The workspace's bot token for a background job; None: the app is not installed."""
        bot = await self.bot(team_id, enterprise_id)
        return None if bot is None else bot.bot_token

    async def teams(self) -> list[str]:
        """Every workspace the app is installed in."""
        bots = self.store.bots
        query = (
            select(bots.c.team_id)
            .where(bots.c.client_id == self.store.client_id, bots.c.team_id.is_not(None))
            .distinct()
        )
        async with self._engine.connect() as connection:
            return [str(team) for team in (await connection.execute(query)).scalars()]

    async def installer(self, team_id: str, enterprise_id: str | None = None) -> str | None:
        """The user id of the person who installed the app into the workspace, if installed."""
        if enterprise_id is None:
            enterprise_id = await self._enterprise_of(team_id)
        installation = await self.store.async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id
        )
        return None if installation is None else installation.user_id

    async def remove(self, team_id: str, enterprise_id: str | None = None) -> None:
        """Forget the workspace's installations and bots (the app was uninstalled)."""
        if enterprise_id is None:
            enterprise_id = await self._enterprise_of(team_id)
        await self.store.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.store.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)
        self.authorize.forget(team_id, enterprise_id)

    def callback_options(self) -> AsyncCallbackOptions:
        """Bolt's install outcomes: its own pages, and a clear one refusing org-wide installs."""
        return AsyncCallbackOptions(success=_succeeded, failure=_failed)

    # -- refreshing ------------------------------------------------------------------------------

    async def _find_bot(self, team_id: str, enterprise_id: str | None) -> Bot | None:
        found = await self.store.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if found is None and enterprise_id is None:
            # Jobs know the workspace alone; one in an Enterprise Grid is stored under both.
            grid = await self._enterprise_of(team_id)
            if grid is not None:
                found = await self.store.async_find_bot(enterprise_id=grid, team_id=team_id)
        return found

    async def _enterprise_of(self, team_id: str) -> str | None:
        """The Enterprise Grid organisation of an installed workspace (team ids are unique)."""
        bots = self.store.bots
        query = (
            select(bots.c.enterprise_id)
            .where(bots.c.client_id == self.store.client_id, bots.c.team_id == team_id)
            .order_by(bots.c.installed_at.desc())
            .limit(1)
        )
        async with self._engine.connect() as connection:
            found: str | None = (await connection.execute(query)).scalar()
        return found

    async def _refresh(self, bot: Bot) -> Bot:
        """Exchange the refresh token and save both tables' rows; called under the locks."""
        installation = await self.store.async_find_installation(
            enterprise_id=bot.enterprise_id, team_id=bot.team_id
        )
        try:
            if installation is None:
                refreshed_bot = await self._rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=ROTATE_BEFORE_SECONDS // 60
                )
                if refreshed_bot is not None:
                    await self.store.async_save_bot(refreshed_bot)
                    return refreshed_bot
                return bot
            refreshed = await self._rotator.perform_token_rotation(
                installation=installation,
                minutes_before_expiration=ROTATE_BEFORE_SECONDS // 60,
            )
        except (SlackTokenRotationError, ClientError, TimeoutError) as error:
            reason = _reason(error)
            expires_at = bot.bot_token_expires_at or 0
            if expires_at > time.time():
                logger.warning(
                    "Slack did not refresh the bot token of %s (%s); it works for %d s more",
                    bot.team_id,
                    reason,
                    expires_at - time.time(),
                )
                return bot
            raise TokenRefreshError(
                f"the bot token of {bot.team_id} expired and Slack did not refresh it: {reason}"
            ) from None
        if refreshed is None:
            return bot
        # Both tables: Bolt reads the installation's copy, background jobs the bot's.
        await self.store.async_save(refreshed)
        logger.info("Refreshed the bot token of %s", bot.team_id)
        return refreshed.to_bot()

    def _lock(self, team_id: str) -> asyncio.Lock:
        return self._locks.setdefault(team_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _database_lock(self, team_id: str) -> AsyncIterator[None]:
        """On PostgreSQL, hold the workspace's refresh lock across replicas until the block ends."""
        if self._engine.dialect.name != "postgresql":
            yield  # SQLite: one replica, so the asyncio lock is enough
            return
        async with self._engine.begin() as connection:
            # Released when this transaction ends, whatever happens: never left to the pool.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"slack-rotate:{team_id}"},
            )
            yield


class InstallationAuthorize(AsyncAuthorize):
    """Bolt's authorize for listeners: the workspace's token through `Installations.bot`.

    So listeners and background jobs refresh tokens the same way, under the same locks. Bolt
    would call auth.test on every request; its answer is kept per workspace until the token
    changes.
    """

    def __init__(self, installations: Installations) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._installations = installations
        self._results: dict[tuple[str | None, str], AuthorizeResult] = {}

    async def __call__(  # noqa: PLR0913 - Bolt's signature
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,  # noqa: ARG002 - the bot acts with its own token only
        actor_enterprise_id: str | None = None,  # noqa: ARG002
        actor_team_id: str | None = None,  # noqa: ARG002
        actor_user_id: str | None = None,  # noqa: ARG002
    ) -> AuthorizeResult | None:
        """The workspace's bot token and identity; None when the app is not installed there."""
        if team_id is None or context.is_enterprise_install:
            return None  # org-wide installs are refused, so none is ever found
        try:
            bot = await self._installations.bot(team_id, enterprise_id)
        except TokenRefreshError as error:
            logger.warning("%s", error)
            return None
        if bot is None or bot.bot_token is None:
            return None
        key = (enterprise_id, team_id)
        known = self._results.get(key)
        if known is not None and known.bot_token == bot.bot_token:
            return known
        try:
            answer = await context.client.auth_test(token=bot.bot_token)
        except SlackApiError as error:
            logger.warning("auth.test failed for %s: %s", team_id, _reason(error))
            return None
        result = AuthorizeResult.from_auth_test_response(
            auth_test_response=answer, bot_token=bot.bot_token, bot_scopes=bot.bot_scopes
        )
        self._results[key] = result
        return result

    def forget(self, team_id: str, enterprise_id: str | None = None) -> None:
        """Drop what is known of the workspace (it uninstalled the app)."""
        self._results.pop((enterprise_id, team_id), None)


def _expiring(bot: Bot) -> bool:
    """Whether the bot's token expires within ROTATE_BEFORE_SECONDS (only with rotation on)."""
    return (
        bot.bot_refresh_token is not None
        and bot.bot_token_expires_at is not None
        and bot.bot_token_expires_at <= time.time() + ROTATE_BEFORE_SECONDS
    )


def _reason(error: BaseException) -> str:
    """Slack's error code, or the failure's kind; never a token."""
    cause = error.api_error if isinstance(error, SlackTokenRotationError) else error
    if isinstance(cause, SlackApiError):
        return str(cause.response.get("error") or "an unexpected answer")
    return type(cause).__name__


async def _succeeded(args: AsyncSuccessArgs) -> BoltResponse:
    return await args.default.success(args)


async def _failed(args: AsyncFailureArgs) -> BoltResponse:
    if isinstance(args.error, OrgWideInstallRefusedError):
        return BoltResponse(
            status=403,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
            },
            body=ORG_WIDE_PAGE,
        )
    return await args.default.failure(args)
