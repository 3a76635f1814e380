"""The fake Slack's OAuth: consent page, oauth.v2.access, token rotation, workspaces kept apart."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from standins.rhombus import ManualClock
from standins.slack import ChannelSpec, SlackSimulator
from standins.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from slack_sdk.web.async_slack_response import AsyncSlackResponse

REDIRECT = "https://clips.example.com/slack/oauth_redirect"


@pytest.fixture
def clock() -> ManualClock:
    """The fake Slack's clock: codes and tokens age only when a test says so."""
    return ManualClock(5_000.0)


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[SlackSimulator]:
    """A fake Slack whose app's Redirect URL is REDIRECT, and a second workspace, T0TWO."""
    async with SlackSimulator(clock=clock) as simulator:
        simulator.oauth.redirect_uri = REDIRECT
        simulator.add_workspace("T0TWO", "two", {"C0TWOGEN": ChannelSpec("general")})
        yield simulator


@pytest.fixture
def app(slack: SlackSimulator) -> AsyncWebClient:
    """slack_sdk's client as an app uses it before it has any token."""
    return AsyncWebClient(base_url=slack.api_url)


def authorize_url(slack: SlackSimulator, **overrides: str) -> str:
    """The "Add to Slack" link as Bolt builds it."""
    query = {
        "state": "state-123",
        "client_id": DEFAULT_CLIENT_ID,
        "scope": "commands,chat:write",
        "user_scope": "",
        "redirect_uri": REDIRECT,
    } | overrides
    return f"{slack.base_url}/oauth/v2/authorize?{urlencode(query)}"


def query_of(url: str) -> dict[str, str]:
    """A URL's query, one value a name."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def exchange(app: AsyncWebClient, code: str, **overrides: str) -> AsyncSlackResponse:
    """oauth.v2.access as Bolt calls it after the redirect."""
    values = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
    } | overrides
    return await app.oauth_v2_access(**values)


async def error_code(call: Awaitable[AsyncSlackResponse]) -> str:
    """The `error` of the `ok: false` answer an awaited client call gets."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


async def test_an_install_from_consent_page_to_token(slack, app):
    """The consent page redirects with a code; oauth.v2.access answers as Slack does."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize_url(slack))

    assert 302 == page.status_code
    location = page.headers["location"]
    assert location.startswith(REDIRECT + "?")
    redirect = query_of(location)
    assert "state-123" == redirect["state"]

    answer = await exchange(app, redirect["code"])

    token = answer["access_token"]
    assert token.startswith("xoxb-")
    assert {
        "ok": True,
        "access_token": token,
        "token_type": "bot",
        "scope": "commands,chat:write",
        "bot_user_id": "U0BOT",
        "app_id": "A0SIM",
        "team": {"id": "T0SIM", "name": "Sim"},
        "enterprise": None,
        "authed_user": {"id": "U0ALICE"},
        "is_enterprise_install": False,
    } == answer.data
    assert "T0SIM" == slack.bot_tokens[token]
    installed = await AsyncWebClient(token=token, base_url=slack.api_url).auth_test()
    assert ("T0SIM", "https://sim.slack.com/") == (installed["team_id"], installed["url"])


async def test_the_client_may_send_its_credentials_as_form_fields(slack):
    """Client id and secret work as form fields too, not only with HTTP Basic."""
    code = query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
    }

    async with httpx.AsyncClient() as client:
        answer = (await client.post(f"{slack.api_url}oauth.v2.access", data=form)).json()

    assert (True, "T0SIM") == (answer["ok"], answer["team"]["id"])


async def test_a_second_workspace_is_a_world_of_its_own(slack, app):
    """A token of T0TWO acts in T0TWO: its auth.test, its channels, none of T0SIM's."""
    location = slack.oauth.approve_install(authorize_url(slack), team_id="T0TWO", user_id="U0CAROL")
    answer = await exchange(app, query_of(location)["code"])
    assert ({"id": "T0TWO", "name": "Two"}, {"id": "U0CAROL"}) == (
        answer["team"],
        answer["authed_user"],
    )
    two = AsyncWebClient(token=answer["access_token"], base_url=slack.api_url)
    sim = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)

    assert ("T0TWO", "Two") == ((await two.auth_test())["team_id"], (await two.auth_test())["team"])
    assert "T0SIM" == (await sim.auth_test())["team_id"]
    posted = await two.chat_postMessage(channel="C0TWOGEN", text="hello two")
    assert ("C0TWOGEN", "T0TWO") == (posted["channel"], posted["message"]["team"])
    assert "T0TWO" == slack.calls_to("chat.postMessage")[-1].team
    # Channels of the other workspace do not exist for a token, by id or by name.
    assert "channel_not_found" == await error_code(
        two.chat_postMessage(channel="C0GENERAL", text="x")
    )
    assert "channel_not_found" == await error_code(
        sim.chat_postMessage(channel="C0TWOGEN", text="x")
    )
    assert "C0GENERAL" == (await sim.chat_postMessage(channel="#general", text="x"))["channel"]
    assert "C0TWOGEN" == (await two.chat_postMessage(channel="#general", text="x"))["channel"]


async def test_a_code_works_once_and_for_ten_minutes(slack, app, clock):
    """A code is single-use, and a code older than ten minutes is refused."""
    first = query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]
    await exchange(app, first)
    assert "invalid_code" == await error_code(exchange(app, first))

    late = query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]
    clock.advance(601)
    assert "invalid_code" == await error_code(exchange(app, late))
    assert "invalid_code" == await error_code(exchange(app, "made-up-code"))


async def test_oauth_v2_access_refuses_wrong_credentials_and_redirects(slack, app):
    """Wrong client id, wrong secret and a redirect_uri other than the page's are refused."""
    code = query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]

    assert "invalid_client_id" == await error_code(exchange(app, code, client_id="999.999"))
    assert "bad_client_secret" == await error_code(exchange(app, code, client_secret="nope"))
    assert "bad_redirect_uri" == await error_code(
        exchange(app, code, redirect_uri="https://evil.example.com/slack/oauth_redirect")
    )
    # The code was spent by the refused exchange: Slack's codes are single-use.
    assert "invalid_code" == await error_code(exchange(app, code))


async def test_the_consent_page_refuses_a_wrong_link_and_tells_of_a_cancel(slack):
    """An unknown client id or foreign redirect_uri gets an error page; a cancel, access_denied."""
    async with httpx.AsyncClient() as browser:
        unknown = await browser.get(authorize_url(slack, client_id="999.999"))
        foreign = await browser.get(authorize_url(slack, redirect_uri="https://evil.example.com/"))

    assert (400, 400) == (unknown.status_code, foreign.status_code)
    assert "invalid_client_id" in unknown.text
    assert "bad_redirect_uri" in foreign.text
    with pytest.raises(ValueError, match="bad_redirect_uri"):
        slack.oauth.approve_install(authorize_url(slack, redirect_uri="https://evil.example.com/"))

    cancelled = slack.oauth.approve_install(authorize_url(slack), cancel=True)

    assert {"error": "access_denied", "state": "state-123"} == query_of(cancelled)
    assert cancelled.startswith(REDIRECT + "?")


async def test_token_rotation_issues_expiring_tokens_refreshed_once(slack, app, clock):
    """With rotation, tokens expire in 12 h; each refresh token is exchanged once."""
    slack.oauth.token_rotation = True
    answer = await exchange(
        app, query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]
    )
    token, refresh_token = answer["access_token"], answer["refresh_token"]
    assert (True, True, 43_200) == (
        token.startswith("xoxe.xoxb-"),
        refresh_token.startswith("xoxe-1-"),
        answer["expires_in"],
    )

    refreshed = await app.oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        grant_type="refresh_token",
        refresh_token=refresh_token,
    )

    assert "bot" == refreshed["token_type"]
    assert "T0SIM" == refreshed["team"]["id"]
    assert refreshed["access_token"] != token
    assert refreshed["refresh_token"] != refresh_token
    assert "invalid_refresh_token" == await error_code(
        app.oauth_v2_access(
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token=refresh_token,
        )
    )
    old = AsyncWebClient(token=token, base_url=slack.api_url)
    new = AsyncWebClient(token=refreshed["access_token"], base_url=slack.api_url)
    assert "T0SIM" == (await old.auth_test())["team_id"]  # good until it expires

    clock.advance(43_200)

    assert "token_expired" == await error_code(old.auth_test())
    assert "token_expired" == await error_code(new.chat_postMessage(channel="C0GENERAL", text="x"))


async def test_a_token_can_be_made_to_expire_now(slack, app):
    """expire_token makes a token answer token_expired at once."""
    slack.oauth.token_rotation = True
    answer = await exchange(
        app, query_of(slack.oauth.approve_install(authorize_url(slack)))["code"]
    )
    client = AsyncWebClient(token=answer["access_token"], base_url=slack.api_url)
    assert (await client.auth_test())["ok"]

    slack.oauth.expire_token(answer["access_token"])

    assert "token_expired" == await error_code(client.auth_test())


async def test_an_org_wide_install_names_the_organisation_and_no_workspace(slack, app):
    """An Enterprise Grid admin's org-wide install answers team null and the enterprise."""
    location = slack.oauth.approve_install(authorize_url(slack), org_wide="E0GRID")

    answer = await exchange(app, query_of(location)["code"])

    assert (None, {"id": "E0GRID", "name": "E0grid"}, True) == (
        answer["team"],
        answer["enterprise"],
        answer["is_enterprise_install"],
    )


async def test_a_workspace_of_a_grid_organisation_names_it(slack, app):
    """Installing into a workspace of an Enterprise Grid names its organisation too."""
    slack.add_workspace("T0GRIDWS", "gridws", enterprise_id="E0GRID")
    location = slack.oauth.approve_install(authorize_url(slack), team_id="T0GRIDWS")

    answer = await exchange(app, query_of(location)["code"])

    assert ({"id": "T0GRIDWS", "name": "Gridws"}, {"id": "E0GRID", "name": "E0grid"}, False) == (
        answer["team"],
        answer["enterprise"],
        answer["is_enterprise_install"],
    )
    tested = await AsyncWebClient(token=answer["access_token"], base_url=slack.api_url).auth_test()
    assert ("T0GRIDWS", "E0GRID") == (tested["team_id"], tested["enterprise_id"])
