"""Workspaces' installations: Bolt's OAuth flow into the bot's database, tokens sealed, rotated."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text

from bot.config import Settings
from bot.installations import Installations
from bot.secret_box import SecretBox, SecretUnreadableError
from bot.store import Store
from standins.slack import ChannelSpec, SlackSimulator
from standins.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from slack_bolt.response import BoltResponse

REDIRECT = "https://clips.example.com/slack/oauth_redirect"
OLD_KEY, NEW_KEY = SecretBox.new_key(), SecretBox.new_key()


@pytest.fixture
async def slack() -> AsyncIterator[SlackSimulator]:
    """The fake Slack with the app's Redirect URL, and a second workspace, T0TWO."""
    async with SlackSimulator() as simulator:
        simulator.oauth.redirect_uri = REDIRECT
        simulator.add_workspace("T0TWO", "two", {"C0TWOGEN": ChannelSpec("general")})
        yield simulator


@pytest.fixture
async def open_installations(
    slack: SlackSimulator,
) -> AsyncIterator[Callable[..., asyncio.Future[Installations]]]:
    """Open Installations on a database (one call: one replica), all closed at the end."""
    stores: list[Store] = []

    async def open_one(url: str, keys: tuple[str, ...] = (OLD_KEY,)) -> Installations:
        settings = Settings(
            _env_file=None,
            slack_client_id=DEFAULT_CLIENT_ID,
            slack_client_secret=DEFAULT_CLIENT_SECRET,
            slack_signing_secret="signing-secret",
            slack_api_url=slack.api_url,
            public_url="https://clips.example.com",
            encryption_keys=",".join(keys),
        )
        assert settings.encryption_keys is not None
        store = Store(url)
        stores.append(store)
        installations = Installations.from_settings(
            settings,
            engine=store.engine,
            box=SecretBox.from_setting(settings.encryption_keys.get_secret_value()),
            client=AsyncWebClient(base_url=settings.slack_api_url),
        )
        await installations.open()
        return installations

    yield open_one  # type: ignore[misc]
    for store in stores:
        await store.close()


def sqlite_url(tmp_path: Path) -> str:
    """The bot's SQLite database in tmp_path, with its async driver."""
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


def async_url(postgres_url: str) -> str:
    """The PostgreSQL URL with the async driver."""
    return postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)


def oauth_flow(slack: SlackSimulator, installations: Installations) -> AsyncOAuthFlow:
    """Bolt's OAuth flow as the bot wires it, the consent page being the fake Slack's."""
    settings = AsyncOAuthSettings(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        scopes=["commands", "chat:write"],
        redirect_uri=REDIRECT,
        authorization_url=f"{slack.base_url}/oauth/v2/authorize",
        installation_store=installations.store,
        state_store=installations.state_store,
        callback_options=installations.callback_options(),
        install_page_rendering_enabled=False,
    )
    return AsyncOAuthFlow(client=AsyncWebClient(base_url=slack.api_url), settings=settings)


async def install(
    slack: SlackSimulator,
    begun_on: Installations,
    finished_on: Installations | None = None,
    **approval: Any,
) -> BoltResponse:
    """/slack/install on one replica, the person's approval, /slack/oauth_redirect on another."""
    started = await oauth_flow(slack, begun_on).handle_installation(
        AsyncBoltRequest(body="", query="", headers={})
    )
    assert 302 == started.status
    cookie = started.headers["set-cookie"][0].split(";", 1)[0]
    redirect = slack.oauth.approve_install(started.headers["location"][0], **approval)
    return await oauth_flow(slack, finished_on or begun_on).handle_callback(
        AsyncBoltRequest(body="", query=urlsplit(redirect).query, headers={"cookie": cookie})
    )


def issued_tokens(slack: SlackSimulator, team_id: str = "T0SIM") -> list[str]:
    """Every bot token the fake Slack issued for the workspace through OAuth, oldest first."""
    return [
        call.response["access_token"]
        for call in slack.calls_to("oauth.v2.access")
        if call.ok and call.response is not None and call.response["team"]["id"] == team_id
    ]


def refreshes(slack: SlackSimulator) -> int:
    """How many refresh tokens were exchanged."""
    return sum(
        1
        for call in slack.calls_to("oauth.v2.access")
        if call.args.get("grant_type") == "refresh_token"
    )


async def test_an_install_on_one_replica_finishes_on_another_sealed(
    slack, open_installations, tmp_path
):
    """/slack/install here, the redirect there; the SQLite file holds no token in plain text."""
    first = await open_installations(sqlite_url(tmp_path))
    second = await open_installations(sqlite_url(tmp_path))

    done = await install(slack, first, second, team_id="T0TWO", user_id="U0CAROL")

    assert 200 == done.status, done.body
    (token,) = issued_tokens(slack, "T0TWO")
    assert token == await first.bot_token("T0TWO")
    assert "U0CAROL" == await first.installer("T0TWO")
    found = await second.store.async_find_installation(enterprise_id=None, team_id="T0TWO")
    assert (token, "U0CAROL") == (found.bot_token, found.user_id)
    assert (None, None) == (await first.bot_token("T0SIM"), await first.installer("T0SIM"))
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("bot.db*"))
    assert b"T0TWO" in stored  # the rows are there
    assert token.encode() not in stored
    assert token.split("-")[-1].encode() not in stored


async def test_an_install_on_postgres_is_found_and_sealed(slack, open_installations, postgres_url):
    """On PostgreSQL the install is found again, and no token column holds a token."""
    installations = await open_installations(async_url(postgres_url))

    done = await install(slack, installations)

    assert 200 == done.status, done.body
    (token,) = issued_tokens(slack)
    assert token == await installations.bot_token("T0SIM")
    connection = await asyncpg.connect(postgres_url)
    try:
        stored = [
            value
            for table in ("slack_installations", "slack_bots")
            for row in await connection.fetch(f"SELECT bot_token, team_id FROM {table}")  # noqa: S608
            for value in row.values()
        ]
    finally:
        await connection.close()
    assert ["T0SIM", "T0SIM"] == [value for value in stored if value == "T0SIM"]
    sealed = [value for value in stored if value != "T0SIM"]
    assert 2 == len(sealed)
    assert all(token not in value and value.startswith("gAAAAA") for value in sealed)


async def test_encryption_keys_rotate_without_losing_an_install(
    slack, open_installations, tmp_path
):
    """Sealed by the old key; found with [new, old]; resealed; then found with [new] alone."""
    url = sqlite_url(tmp_path)
    await install(slack, await open_installations(url, (OLD_KEY,)))
    (token,) = issued_tokens(slack)

    both = await open_installations(url, (NEW_KEY, OLD_KEY))
    assert token == await both.bot_token("T0SIM")
    assert 2 == await both.reseal()  # the installation's copy and the bot's
    assert 0 == await both.reseal()

    new_only = await open_installations(url, (NEW_KEY,))
    assert token == await new_only.bot_token("T0SIM")
    assert (
        token
        == (
            await new_only.store.async_find_installation(enterprise_id=None, team_id="T0SIM")
        ).bot_token
    )
    old_only = await open_installations(url, (OLD_KEY,))
    with pytest.raises(SecretUnreadableError):
        await old_only.bot_token("T0SIM")


async def test_a_token_near_expiry_is_refreshed_once_for_concurrent_callers(
    slack, open_installations, tmp_path
):
    """Two jobs asking at once for a token expiring within 2 h get one refresh between them."""
    slack.oauth.token_rotation = True
    slack.oauth.token_lifetime = 600  # issued already within the two hours before expiry
    installations = await open_installations(sqlite_url(tmp_path))
    await install(slack, installations)
    (first,) = issued_tokens(slack)
    slack.oauth.token_lifetime = 43_200

    tokens = await asyncio.gather(
        installations.bot_token("T0SIM"), installations.bot_token("T0SIM")
    )

    assert 1 == refreshes(slack)
    refreshed = tokens[0]
    assert [refreshed, refreshed] == list(tokens)
    assert first != refreshed
    assert "T0SIM" == slack.bot_tokens[refreshed]
    assert refreshed == await installations.bot_token("T0SIM")  # no second refresh
    assert 1 == refreshes(slack)
    # Bolt reads the installation's copy: it has the new token and refresh token too.
    found = await installations.store.async_find_installation(enterprise_id=None, team_id="T0SIM")
    bot = await installations.store.async_find_bot(enterprise_id=None, team_id="T0SIM")
    assert (refreshed, bot.bot_refresh_token) == (found.bot_token, found.bot_refresh_token)
    # The rows were updated in place, not added beside the old ones.
    async with installations.store.engine.connect() as connection:
        counts = [
            (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar()  # noqa: S608
            for table in ("slack_installations", "slack_bots")
        ]
    assert [1, 1] == counts


async def test_two_replicas_on_postgres_refresh_a_token_once(
    slack, open_installations, postgres_url
):
    """Replicas with their own engines, refreshing at once, exchange the refresh token once."""
    slack.oauth.token_rotation = True
    slack.oauth.token_lifetime = 600
    replicas = [await open_installations(async_url(postgres_url)) for _ in range(3)]
    await install(slack, replicas[0])
    slack.oauth.token_lifetime = 43_200

    tokens = await asyncio.gather(*(replica.bot_token("T0SIM") for replica in replicas * 2))

    assert 1 == refreshes(slack)
    assert 1 == len(set(tokens))
    assert tokens[0] == issued_tokens(slack)[-1]
    assert not any(call.error == "invalid_refresh_token" for call in slack.calls)


async def test_a_failed_refresh_keeps_a_token_that_still_works(slack, open_installations, tmp_path):
    """If Slack refuses a refresh while the token has minutes left, the token is still used."""
    slack.oauth.token_rotation = True
    slack.oauth.token_lifetime = 600
    installations = await open_installations(sqlite_url(tmp_path))
    await install(slack, installations)
    (token,) = issued_tokens(slack)
    slack.fail("oauth.v2.access", error="internal_error")

    assert token == await installations.bot_token("T0SIM")
    assert 1 == refreshes(slack)


async def test_listeners_authorize_through_the_same_tokens_and_cache_auth_test(
    slack, open_installations, tmp_path
):
    """Bolt's authorize finds the team's token, asks auth.test once, and nothing once removed."""
    installations = await open_installations(sqlite_url(tmp_path))
    await install(slack, installations, team_id="T0TWO")
    (token,) = issued_tokens(slack, "T0TWO")
    context = AsyncBoltContext(client=AsyncWebClient(base_url=slack.api_url))
    asked_before = len(slack.calls_to("auth.test"))

    results = [
        await installations.authorize(
            context=context, enterprise_id=None, team_id="T0TWO", user_id="U0ALICE"
        )
        for _ in range(3)
    ]

    assert 1 == len(slack.calls_to("auth.test")) - asked_before
    assert (token, "T0TWO", "U0BOT") == (
        results[2].bot_token,
        results[2].team_id,
        results[2].bot_user_id,
    )
    assert None is await installations.authorize(
        context=context, enterprise_id=None, team_id="T0SIM", user_id="U0ALICE"
    )

    await installations.remove("T0TWO")

    assert None is await installations.authorize(
        context=context, enterprise_id=None, team_id="T0TWO", user_id="U0ALICE"
    )
    assert (None, None) == (
        await installations.bot_token("T0TWO"),
        await installations.installer("T0TWO"),
    )


async def test_an_org_wide_install_is_refused_with_a_page_and_not_stored(
    slack, open_installations, tmp_path
):
    """An Enterprise Grid org-wide install gets a page saying why, and nothing is stored."""
    installations = await open_installations(sqlite_url(tmp_path))

    done = await install(slack, installations, org_wide="E0GRID")

    assert 403 == done.status
    assert "one workspace at a time" in str(done.body)
    assert None is await installations.store.async_find_installation(
        enterprise_id="E0GRID", team_id=None, is_enterprise_install=True
    )
    assert None is await installations.store.async_find_bot(
        enterprise_id="E0GRID", team_id=None, is_enterprise_install=True
    )


async def test_a_cancelled_install_stores_nothing(slack, open_installations, tmp_path):
    """A person who cancels on Slack's page gets Bolt's failure page; nothing is stored."""
    installations = await open_installations(sqlite_url(tmp_path))

    done = await install(slack, installations, cancel=True)

    assert 200 == done.status  # Bolt's own page for access_denied
    assert "access_denied" in str(done.body)
    assert None is await installations.bot_token("T0SIM")


async def test_a_workspace_of_a_grid_organisation_is_found_by_its_team_alone(
    slack, open_installations, tmp_path
):
    """Jobs know only the team id: a Grid workspace's install is found, and removed, by it."""
    slack.add_workspace("T0GRIDWS", "gridws", enterprise_id="E0GRID")
    installations = await open_installations(sqlite_url(tmp_path))
    await install(slack, installations, team_id="T0GRIDWS", user_id="U0DAVE")
    (token,) = issued_tokens(slack, "T0GRIDWS")
    context = AsyncBoltContext(client=AsyncWebClient(base_url=slack.api_url))

    assert (token, token, "U0DAVE") == (
        await installations.bot_token("T0GRIDWS"),
        await installations.bot_token("T0GRIDWS", "E0GRID"),
        await installations.installer("T0GRIDWS"),
    )
    result = await installations.authorize(
        context=context, enterprise_id="E0GRID", team_id="T0GRIDWS", user_id="U0DAVE"
    )
    assert ("E0GRID", "T0GRIDWS") == (result.enterprise_id, result.team_id)

    await installations.remove("T0GRIDWS")

    assert (None, None) == (
        await installations.bot_token("T0GRIDWS", "E0GRID"),
        await installations.store.async_find_installation(
            enterprise_id="E0GRID", team_id="T0GRIDWS"
        ),
    )
