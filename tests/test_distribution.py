"""Installed into many workspaces: OAuth, Connect Rhombus, isolation and uninstall, end to end.

The real bot runs with SLACK_CLIENT_ID set against the Slack stand-in (which installs it with
OAuth) and two Rhombus regions of several organisations; everything goes through its endpoints.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from bot.app import SHORTCUT_CALLBACK_ID
from bot.connect_view import (
    ACTION_CONNECT,
    CLIENT_ACTION,
    CLIENT_BLOCK,
    DISCONNECT,
    DISCONNECT_ACTION,
    DISCONNECT_BLOCK,
    KEY_ACTION,
    KEY_BLOCK,
    KIND_ACTION,
    KIND_BLOCK,
    REGION_ACTION,
    REGION_BLOCK,
)
from bot.logs import configure_logging
from bot.runtime import Bot
from bot.secret_box import SecretBox
from bot.store import StoreError
from bot.workspaces import NOT_CONNECTED, not_connected
from standins.rhombus import ManualClock, RhombusSimulator, completes, stays
from standins.rhombus_cloud import RhombusCloud
from standins.slack import ChannelSpec, SlackSimulator
from standins.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from standins.slack_requests import (
    Origin,
    app_home_opened,
    event_callback,
    home_action,
    message_shortcut,
    send_over_socket,
    slash_command,
    view_submission,
)
from tests.contract.openapi import validate_exchange
from tests.helpers import APP_TOKEN, send, shown_text, status_messages, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from bot.config import Settings

PUBLIC_URL = "https://clips.example.com"
EPOCH = int(time.time()) - 1_000  # the clips are recent: the Home lists the last 7 days
ALPHA, BETA = "T0SIM", "T0BETA"  # the stand-in's first workspace, and a second one
ALPHA_KEY = "rk-alpha-us-0123456789-aa11"
BETA_KEY = "rk-beta-eu-9876543210-bb22"
ALPHA_ORG, BETA_ORG = "AlphaOrg00000000000000", "BetaOrg000000000000000"
CLIP_A, CLIP_B = "AlphaClip0123456789abc", "BetaClip_0123456789xyz"
OTHER_A = "AlphaYard0123456789abc"
ADMIN, MEMBER = "U0ALICE", "U0BOB"
ALPHA_ORIGIN = Origin(user_id=ADMIN, team_id=ALPHA, channel_id="C0GENERAL")
BETA_ORIGIN = Origin(
    user_id=ADMIN, team_id=BETA, team_domain="beta", channel_id="C0BETA", channel_name="beta"
)


@pytest.fixture
async def regions(clock: ManualClock) -> AsyncIterator[tuple[RhombusCloud, RhombusCloud]]:
    """The US region with Alpha's organisation, the EU region with Beta's."""
    us, eu = RhombusCloud("US"), RhombusCloud("EU")
    alpha = us.add_org(
        RhombusSimulator(api_key=ALPHA_KEY, org_uuid=ALPHA_ORG, clock=clock, epoch=EPOCH)
    )
    beta = eu.add_org(
        RhombusSimulator(api_key=BETA_KEY, org_uuid=BETA_ORG, clock=clock, epoch=EPOCH)
    )
    alpha.add_clip(CLIP_A, title="Alpha lobby", script=stays("UPLOADING", "Uploading", 600))
    beta.add_clip(CLIP_B, title="Beta dock", script=completes(10))
    async with us, eu:
        yield us, eu
    for exchange in us.exchanges + eu.exchanges:
        validate_exchange(exchange)


@pytest.fixture
def distributed(
    make_settings: Callable[..., Settings],
    slack: SlackSimulator,
    regions: tuple[RhombusCloud, RhombusCloud],
) -> Callable[..., Settings]:
    """Settings of a bot any workspace installs: the stand-ins' usual settings, with OAuth."""
    us, eu = regions
    slack.oauth.redirect_uri = f"{PUBLIC_URL}/slack/oauth_redirect"
    slack.add_workspace(BETA, "beta", {"C0BETA": ChannelSpec("beta")})
    slack.views.people[ADMIN].is_admin = True
    key = SecretBox.new_key()

    def make(**overrides: object) -> Settings:
        return make_settings(
            **{
                "slack_bot_token": None,  # each workspace's comes from its install
                "rhombus_api_key": None,  # and its Rhombus key from Connect Rhombus
                "slack_client_id": DEFAULT_CLIENT_ID,
                "slack_client_secret": DEFAULT_CLIENT_SECRET,
                "public_url": PUBLIC_URL,
                "encryption_keys": key,
                "rhombus_api_url": us.url,
                "rhombus_media_url": us.url,
                "rhombus_eu_api_url": eu.url,
                "rhombus_eu_media_url": eu.url,
                "home_refresh_seconds": 0.1,
                **overrides,
            }
        )

    return make


@pytest.fixture
async def bot(distributed: Callable[..., Settings]) -> AsyncIterator[Bot]:
    """The real bot, installable into any workspace."""
    running = await Bot.start(distributed())
    try:
        yield running
    finally:
        await running.stop()


async def install(bot: Bot, slack: SlackSimulator, team_id: str, user_id: str = ADMIN) -> str:
    """Open "Add to Slack", approve in the workspace, come back; the page the bot shows."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.port}") as browser:
        page = await browser.get("/slack/install")
        assert 200 == page.status_code
        found = re.search(r'href="([^"]*oauth/v2/authorize[^"]*)"', page.text)
        assert found is not None, page.text
        link = html.unescape(found.group(1))
        assert link.startswith(slack.base_url)  # SLACK_API_URL's host serves the consent page
        back = urlsplit(slack.oauth.approve_install(link, team_id=team_id, user_id=user_id))
        assert f"{back.scheme}://{back.netloc}" == PUBLIC_URL
        # Bolt's state cookie is Secure: a browser sends it back over PUBLIC_URL's https.
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        done = await browser.get(f"{back.path}?{back.query}", headers={"Cookie": cookie})
        assert 200 == done.status_code, done.text
        return done.text


def connect_values(key: str, region: str, *, disconnect: bool = False) -> dict[str, Any]:
    """The Connect Rhombus modal's state.values as Slack sends them."""

    def radio(value: str) -> dict[str, Any]:
        return {
            "type": "radio_buttons",
            "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}},
        }

    boxes = [{"value": DISCONNECT, "text": {"type": "plain_text", "text": "Disconnect"}}]
    return {
        KEY_BLOCK: {KEY_ACTION: {"type": "plain_text_input", "value": key}},
        REGION_BLOCK: {REGION_ACTION: radio(region)},
        KIND_BLOCK: {KIND_ACTION: radio("api")},
        CLIENT_BLOCK: {CLIENT_ACTION: {"type": "plain_text_input", "value": None}},
        DISCONNECT_BLOCK: {
            DISCONNECT_ACTION: {
                "type": "checkboxes",
                "selected_options": boxes if disconnect else [],
            }
        },
    }


async def connect(
    bot: Bot, slack: SlackSimulator, origin: Origin, values: dict[str, Any]
) -> dict[str, Any]:
    """Press Connect Rhombus in the Home and submit the modal; Slack's answer to the submission."""
    opened = len(slack.views.opened)
    trigger = slack.views.trigger()
    clicked = await send(
        bot, home_action(ACTION_CONNECT, "", view_id="V0HOME", trigger_id=trigger, origin=origin)
    )
    assert 200 == clicked.status_code
    await slack.wait_for(lambda s: len(s.views.opened) > opened)
    answer = await send(bot, view_submission(slack.views.opened[-1], values, origin=origin))
    assert 200 == answer.status_code
    if answer.text:
        return dict(answer.json())
    # The modal closed; the workspace's organisation is built just after.
    connected = not values[DISCONNECT_BLOCK][DISCONNECT_ACTION]["selected_options"]
    await wait_until(lambda: (bot.workspaces.organisation(origin.team_id) is not None) == connected)
    return {}


async def clip(bot: Bot, slack: SlackSimulator, text: str, origin: Origin) -> None:
    """Type `/clip text` in the origin's channel."""
    request = slash_command(text, response_url=slack.response_url(), origin=origin)
    assert 200 == (await send(bot, request)).status_code


async def told(bot: Bot, slack: SlackSimulator, text: str, origin: Origin) -> str:
    """Type `/clip text`; what the person is told, alone."""
    before = len(slack.ephemerals)
    await clip(bot, slack, text, origin)
    await slack.wait_for(lambda s: len(s.ephemerals) > before)
    return slack.ephemerals[before].text


def keys_used(cloud: RhombusCloud) -> set[str]:
    """Every Rhombus key the bot's calls to a region carried."""
    return {e.headers.get("x-auth-apikey", "") for e in cloud.exchanges}


async def test_an_install_comes_back_to_a_workspace_that_must_connect_rhombus(
    bot: Bot, slack: SlackSimulator
) -> None:
    """Add to Slack stores the install; until Rhombus is connected, /clip says how to connect."""
    page = await install(bot, slack, ALPHA)
    assert "Oops" not in page
    assert ALPHA in await bot.distribution.installations.teams()  # type: ignore[union-attr]
    answer = await told(bot, slack, CLIP_A, ALPHA_ORIGIN)
    assert "Rhombus isn't connected to this workspace yet" in answer
    assert "<slack://app?team=T0SIM&id=A0SIM&tab=home|Home tab>" in answer
    assert [] == status_messages(slack)


async def test_two_workspaces_follow_clips_each_with_its_own_token_and_key(
    bot: Bot,
    slack: SlackSimulator,
    regions: tuple[RhombusCloud, RhombusCloud],
    clock: ManualClock,
) -> None:
    """Alpha (US key) and Beta (EU key): each sees only its own organisation's clips."""
    us, eu = regions
    await install(bot, slack, ALPHA)
    await install(bot, slack, BETA)
    assert {} == await connect(bot, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    assert {} == await connect(bot, slack, BETA_ORIGIN, connect_values(BETA_KEY, "EU"))

    await clip(bot, slack, CLIP_A, ALPHA_ORIGIN)
    await clip(bot, slack, CLIP_B, BETA_ORIGIN)
    # Alpha's clip, asked for in Beta: Beta's organisation does not have it.
    assert "can't find clip" in await told(bot, slack, CLIP_A, BETA_ORIGIN)

    await slack.wait_for(
        lambda s: len(status_messages(s)) == 1 and len(status_messages(s, "C0BETA")) == 1
    )
    (alpha_message,) = status_messages(slack)
    (beta_message,) = status_messages(slack, "C0BETA")
    assert "Alpha lobby" in shown_text(alpha_message)
    assert "Beta dock" in shown_text(beta_message)
    # Each workspace's messages were posted and edited with its own bot token.
    for call in slack.calls:
        if call.method in {"chat.postMessage", "chat.update"} and call.ok:
            channel = call.args.get("channel")
            assert (ALPHA if channel == "C0GENERAL" else BETA) == call.team, call
    # Each organisation was asked with its own key, in its own region.
    assert {ALPHA_KEY} == keys_used(us)
    assert {BETA_KEY} == keys_used(eu)
    clock.advance(30)
    await slack.wait_for(
        lambda s: "ready" in shown_text(status_messages(s, "C0BETA")[0]).lower(), 10
    )


async def test_a_workspace_without_rhombus_sees_the_connect_button_in_its_home(
    bot: Bot, slack: SlackSimulator
) -> None:
    """The Home says Rhombus is not connected, with Connect Rhombus for an admin."""
    await install(bot, slack, ALPHA)
    published = len(slack.calls_to("views.publish"))
    await send(bot, event_callback(app_home_opened(origin=ALPHA_ORIGIN), origin=ALPHA_ORIGIN))
    await slack.wait_for(lambda s: len(s.calls_to("views.publish")) > published)
    view = slack.calls_to("views.publish")[-1].args["view"]
    text = view if isinstance(view, str) else str(view)
    assert "Rhombus is not connected" in text
    assert ACTION_CONNECT in text


async def test_uninstall_mid_clip_ends_its_trackings_and_forgets_its_secrets(
    bot: Bot, slack: SlackSimulator, regions: tuple[RhombusCloud, RhombusCloud]
) -> None:
    """app_uninstalled: trackings end, no more calls with its token, token and key deleted."""
    us, _ = regions
    await install(bot, slack, ALPHA)
    await connect(bot, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    await clip(bot, slack, CLIP_A, ALPHA_ORIGIN)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    await wait_until(lambda: bot.tracker.live_count == 1)

    uninstall = event_callback({"type": "app_uninstalled"}, origin=ALPHA_ORIGIN)
    assert 200 == (await send(bot, uninstall)).status_code
    await wait_until(lambda: bot.tracker.live_count == 0 and bot.workspaces.get(ALPHA) is None)
    assert [] == await bot.distribution.installations.teams()  # type: ignore[union-attr]
    assert await bot.distribution.keys.get(ALPHA) is None  # type: ignore[union-attr]
    assert [] == list(await bot.store.unfinished())
    asked = len(us.exchanges)
    calls = len(slack.calls)
    await asyncio.sleep(0.5)  # five poll intervals, in which nothing may happen
    assert asked == len(us.exchanges)
    assert calls == len(slack.calls)


@pytest.fixture
def debug_log(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """The bot's own logging at DEBUG, as `python -m bot` sets it up; what it wrote to stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("DEBUG")
    try:
        yield lambda: capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_no_token_or_key_is_stored_or_logged_in_plain_text(
    bot: Bot, slack: SlackSimulator, tmp_path: Path, debug_log: Callable[[], str]
) -> None:
    """The database file and the DEBUG log hold neither the bot token nor the Rhombus key."""
    await install(bot, slack, ALPHA)
    await connect(bot, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    await clip(bot, slack, CLIP_A, ALPHA_ORIGIN)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    issued = [t for t, team in slack.bot_tokens.items() if team == ALPHA and t != slack.bot_token]
    assert issued  # the token the install was given
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("bot.db*"))  # noqa: ASYNC240
    logged = debug_log()
    assert "Rhombus connected" in logged  # the log was captured
    for secret in [*issued, ALPHA_KEY]:
        assert secret.encode() not in stored
        assert secret not in logged


async def test_only_an_admin_may_connect_and_a_wrong_key_is_named(
    bot: Bot, slack: SlackSimulator
) -> None:
    """A member sees who may connect; an admin's wrong key is refused under its field."""
    await install(bot, slack, ALPHA, user_id=ADMIN)
    member = Origin(user_id=MEMBER, team_id=ALPHA)
    opened = len(slack.views.opened)
    trigger = slack.views.trigger()
    await send(
        bot, home_action(ACTION_CONNECT, "", view_id="V0HOME", trigger_id=trigger, origin=member)
    )
    await slack.wait_for(lambda s: len(s.views.opened) > opened)
    assert "admin" in json.dumps(slack.views.opened[-1])
    refused = await connect(bot, slack, ALPHA_ORIGIN, connect_values("rk-not-a-real-key-000", "US"))
    assert "errors" == refused["response_action"]
    assert KEY_BLOCK in refused["errors"]
    assert bot.workspaces.organisation(ALPHA) is None


async def test_rotating_encryption_keys_keeps_every_workspace_connected(
    distributed: Callable[..., Settings], slack: SlackSimulator
) -> None:
    """NEW,OLD reads what OLD sealed and reseals it; then NEW alone still reads everything."""
    old, new = SecretBox.new_key(), SecretBox.new_key()
    first = await Bot.start(distributed(encryption_keys=old))
    try:
        await install(first, slack, ALPHA)
        await connect(first, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    finally:
        await first.stop()
    for keys in (f"{new},{old}", new):
        again = await Bot.start(distributed(encryption_keys=keys))
        try:
            assert again.workspaces.organisation(ALPHA) is not None, keys
            assert again.workspaces.slack(ALPHA) is not None, keys
        finally:
            await again.stop()
    with pytest.raises(StoreError, match="none of ENCRYPTION_KEYS opens them"):
        await Bot.start(distributed(encryption_keys=SecretBox.new_key()))


async def test_a_rotating_token_is_refreshed_once_and_then_used_everywhere(
    bot: Bot, slack: SlackSimulator, regions: tuple[RhombusCloud, RhombusCloud]
) -> None:
    """Token rotation: the expiring token is exchanged once, then every call carries the new one."""
    slack.oauth.token_rotation = True
    slack.oauth.token_lifetime = 2 * 3600 + 2  # within the 2 hours before expiry in 2 seconds
    await install(bot, slack, ALPHA)
    await connect(bot, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    (first,) = [t for t, team in slack.bot_tokens.items() if team == ALPHA and t.startswith("xoxe")]
    await asyncio.sleep(2.5)  # the token's last 2 hours begin
    await clip(bot, slack, CLIP_A, ALPHA_ORIGIN)  # Bolt authorizes it: the token is refreshed
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    await bot.distribution.refresh()  # type: ignore[union-attr]  # what runs every 10 minutes
    refreshes = [
        c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"
    ]
    assert 1 == len(refreshes)
    second = str(refreshes[0].response["access_token"])  # type: ignore[index]
    assert second != first
    regions[0].orgs[0].add_clip(OTHER_A, title="Alpha yard")
    posted = len(slack.calls)
    await clip(bot, slack, OTHER_A, ALPHA_ORIGIN)
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    assert {second} == {c.token for c in slack.calls[posted:] if c.method == "chat.postMessage"}


@pytest.mark.slow
async def test_replicas_on_postgres_hear_of_connects_and_uninstalls_made_elsewhere(
    distributed: Callable[..., Settings], slack: SlackSimulator, postgres_url: str
) -> None:
    """Installed on one replica, connected on another: an uninstall anywhere stops the holder."""
    settings = distributed(database_url=postgres_url)
    first = await Bot.start(settings)
    second = await Bot.start(settings)
    try:
        both = (first, second)
        await wait_until(
            lambda: (
                all(b.shards and b.shards.held for b in both)
                and sum(len(b.shards.held) for b in both if b.shards) == 64
            ),
            15,
        )
        await install(first, slack, ALPHA)
        await wait_until(lambda: second.workspaces.get(ALPHA) is not None)
        await connect(second, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
        await wait_until(lambda: first.workspaces.organisation(ALPHA) is not None)

        holder, other = both if first.shards and first.shards.holds(ALPHA) else both[::-1]
        await clip(other, slack, CLIP_A, ALPHA_ORIGIN)  # asked on the replica not following it
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        await wait_until(lambda: holder.tracker.live_count == 1)

        uninstall = event_callback({"type": "app_uninstalled"}, origin=ALPHA_ORIGIN)
        assert 200 == (await send(other, uninstall)).status_code
        await wait_until(
            lambda: holder.tracker.live_count == 0 and holder.workspaces.get(ALPHA) is None
        )
        assert other.workspaces.get(ALPHA) is None
        assert [] == list(await holder.store.unfinished())
    finally:
        await second.stop()
        await first.stop()


async def test_in_socket_mode_installs_still_come_back_over_http(
    distributed: Callable[..., Settings], slack: SlackSimulator
) -> None:
    """With SLACK_APP_TOKEN the install pages are served on PORT, commands come over the socket."""
    running = await Bot.start(distributed(slack_app_token=APP_TOKEN))
    try:
        await install(running, slack, ALPHA)
        await connect_over_socket(slack)
        await wait_until(lambda: running.workspaces.organisation(ALPHA) is not None)
        await send_over_socket(slack, slash_command(CLIP_A, response_url=slack.response_url()))
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        (post,) = [c for c in slack.calls_to("chat.postMessage") if c.ok]
        assert ALPHA == post.team
    finally:
        await running.stop()


async def connect_over_socket(slack: SlackSimulator) -> None:
    """Press Connect Rhombus and submit the modal, over Socket Mode."""
    await slack.wait_for_socket_connection()
    opened = len(slack.views.opened)
    trigger = slack.views.trigger()
    await send_over_socket(
        slack,
        home_action(ACTION_CONNECT, "", view_id="V0HOME", trigger_id=trigger, origin=ALPHA_ORIGIN),
    )
    await slack.wait_for(lambda s: len(s.views.opened) > opened)
    values = connect_values(ALPHA_KEY, "US")
    await send_over_socket(
        slack, view_submission(slack.views.opened[-1], values, origin=ALPHA_ORIGIN)
    )


async def test_each_home_shows_its_own_organisations_clips(bot: Bot, slack: SlackSimulator) -> None:
    """The same person's Home in each workspace lists that workspace's organisation only."""
    for team, origin, key, region in (
        (ALPHA, ALPHA_ORIGIN, ALPHA_KEY, "US"),
        (BETA, BETA_ORIGIN, BETA_KEY, "EU"),
    ):
        await install(bot, slack, team)
        await connect(bot, slack, origin, connect_values(key, region))
    homes = {}
    for team, origin in ((ALPHA, ALPHA_ORIGIN), (BETA, BETA_ORIGIN)):
        published = len(slack.calls_to("views.publish"))
        await send(bot, event_callback(app_home_opened(origin=origin), origin=origin))

        def listed(s: SlackSimulator, n: int = published, team: str = team) -> bool:
            return any(
                c.team == team and "Recent clips" in json.dumps(c.args)
                for c in s.calls_to("views.publish")[n:]
            )

        await slack.wait_for(listed)
        homes[team] = json.dumps(slack.calls_to("views.publish")[-1].args)
    assert "Alpha lobby" in homes[ALPHA]
    assert "Beta dock" not in homes[ALPHA]
    assert "Beta dock" in homes[BETA]
    assert "Alpha lobby" not in homes[BETA]
    assert "key ending" in homes[ALPHA]
    published = len(slack.calls_to("views.publish"))
    await bot.distribution.refresh()  # type: ignore[union-attr]  # nothing changed: no publish
    await asyncio.sleep(0.3)  # three times HOME_REFRESH_SECONDS
    assert published == len(slack.calls_to("views.publish"))


@pytest.mark.parametrize(
    ("team_id", "app_id"),
    [("T0SIM", None), ("T0SIM", ""), ("T0SIM", "A0|<evil>"), ("<!here>", "A0SIM"), ("T0SIM", 7)],
)
def test_the_not_connected_answer_links_the_home_only_for_real_ids(
    team_id: str, app_id: object
) -> None:
    """Ids that are not Slack's never reach the link: the answer is then plain."""
    assert NOT_CONNECTED == not_connected(team_id, app_id)


async def test_an_org_wide_install_is_refused_with_a_page_saying_why(
    bot: Bot, slack: SlackSimulator
) -> None:
    """An Enterprise Grid org-wide install is refused: install into each workspace instead."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.port}") as browser:
        page = await browser.get("/slack/install")
        found = re.search(r'href="([^"]*oauth/v2/authorize[^"]*)"', page.text)
        assert found is not None
        link = html.unescape(found.group(1))
        back = urlsplit(slack.oauth.approve_install(link, org_wide="E0GRID"))
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        done = await browser.get(f"{back.path}?{back.query}", headers={"Cookie": cookie})
    assert 403 == done.status_code
    assert "one workspace at a time" in done.text
    assert [] == await bot.distribution.installations.teams()  # type: ignore[union-attr]


async def test_a_revoked_bot_token_is_an_uninstall(bot: Bot, slack: SlackSimulator) -> None:
    """tokens_revoked naming the bot: the workspace is forgotten; user tokens alone are not ours."""
    await install(bot, slack, ALPHA)
    await connect(bot, slack, ALPHA_ORIGIN, connect_values(ALPHA_KEY, "US"))
    users_only = {"type": "tokens_revoked", "tokens": {"oauth": ["U0ALICE"], "bot": []}}
    await send(bot, event_callback(users_only, origin=ALPHA_ORIGIN))
    await asyncio.sleep(0.3)  # a moment in which nothing may change
    assert bot.workspaces.organisation(ALPHA) is not None
    bot_revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0BOT"]}}
    await send(bot, event_callback(bot_revoked, origin=ALPHA_ORIGIN))
    await wait_until(lambda: bot.workspaces.get(ALPHA) is None)
    assert await bot.distribution.keys.get(ALPHA) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "query",
    ["", "?code=x&state=y", "?error=access_denied&state=y", "?code=%00%ff&state=" + "z" * 5000],
)
async def test_a_forged_or_broken_oauth_redirect_installs_nothing(
    bot: Bot, slack: SlackSimulator, query: str
) -> None:
    """A redirect that did not start at /slack/install gets Bolt's error page, and no install."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.port}") as browser:
        answer = await browser.get(f"/slack/oauth_redirect{query}")
    assert answer.status_code < 500  # Bolt's page (200 for a person who pressed Cancel)
    assert "Oops" in answer.text
    assert [] == await bot.distribution.installations.teams()  # type: ignore[union-attr]
    assert not slack.calls_to("oauth.v2.access")


async def test_the_shortcut_in_a_workspace_without_rhombus_says_how_to_connect(
    bot: Bot, slack: SlackSimulator
) -> None:
    """Follow Rhombus clip on a message, before Rhombus is connected: the same answer as /clip."""
    await install(bot, slack, ALPHA)
    message = slack.post_user_message("C0GENERAL", f"look at {CLIP_A}")
    before = len(slack.ephemerals)
    shortcut = message_shortcut(
        message,
        callback_id=SHORTCUT_CALLBACK_ID,
        response_url=slack.response_url(),
        origin=ALPHA_ORIGIN,
    )
    assert 200 == (await send(bot, shortcut)).status_code
    await slack.wait_for(lambda s: len(s.ephemerals) > before)
    assert "Rhombus isn't connected to this workspace yet" in slack.ephemerals[before].text
    assert [] == status_messages(slack)
