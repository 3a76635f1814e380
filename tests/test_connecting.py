"""Connecting a workspace's Rhombus organisation: a real Bolt app behind the real endpoint.

Slack's clicks and submissions are signed HTTP requests into `bot.server.Server`; Slack is the
stand-in, Rhombus two regions of `standins.rhombus_cloud` with several organisations each.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app
from bot.connect_view import (
    ACTION_CONNECT,
    CLIENT_ACTION,
    CLIENT_BLOCK,
    CONNECT_MODAL,
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
from bot.connecting import NOT_ALLOWED, Connecting
from bot.rhombus_keys import RhombusKeys
from bot.secret_box import SecretBox
from bot.server import Server
from bot.store import Store
from standins.rhombus import LIST_CLIPS_PATH, Fault, ManualClock, RhombusSimulator
from standins.rhombus_cloud import RhombusCloud
from standins.slack_requests import Origin, home_action, post, view_submission
from standins.slack_views import Person
from tests.contract.openapi import validate_exchange
from tests.helpers import BOT_TOKEN, SIGNING_SECRET, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx

    from standins.slack import SlackSimulator

TEAM = "T0SIM"
US_KEY = "rk-acme-us-0123456789-ab12"
EU_KEY = "rk-euro-eu-9876543210-cd34"
PARTNER_KEY = "pk-integrator-5555555555-ef56"
ACME, EURO = "AcmeOrg000000000000000", "EuroOrg000000000000000"
GLOBEX, INITECH = "GlobexOrg0000000000000", "InitechOrg000000000000"
ADMIN, OWNER, PRIMARY, INSTALLER, MEMBER, GUEST = (
    "U0ALICE",
    "U0OWEN",
    "U0PRIMA",
    "U0CAROL",
    "U0BOB",
    "U0GUEST",
)
KEYS_SEEN = (US_KEY, EU_KEY, PARTNER_KEY)


@dataclass
class Rig:
    """The Bolt app with the Connect listeners behind the real endpoint, and what it talks to."""

    url: str
    slack: SlackSimulator
    us: RhombusCloud
    eu: RhombusCloud
    keys: RhombusKeys
    changed: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # every body the endpoint answered

    async def send(self, request: Any) -> httpx.Response:  # a standins.slack_requests request
        """Post a request to the endpoint, signed as Slack signs it."""
        response = await post(self.url, request, signing_secret=SIGNING_SECRET)
        self.answers.append(response.text)
        assert 200 == response.status_code
        return response

    async def click(self, user: str = ADMIN) -> dict[str, Any]:
        """Press the Home's Connect button; the view Slack opened."""
        before = len(self.slack.views.opened)
        trigger = self.slack.views.trigger()
        await self.send(
            home_action(
                ACTION_CONNECT,
                "",
                view_id="V0HOME",
                trigger_id=trigger,
                origin=Origin(user_id=user),
            )
        )
        await self.slack.wait_for(lambda s: len(s.views.opened) > before)
        view: dict[str, Any] = self.slack.views.opened[-1]
        return view

    async def submit(
        self, view: dict[str, Any], state: dict[str, Any], user: str = ADMIN
    ) -> dict[str, Any]:
        """Submit the modal; Slack's answer (empty: the modal closes)."""
        response = await self.send(view_submission(view, state, origin=Origin(user_id=user)))
        return response.json() if response.text else {}

    async def connect(self, state: dict[str, Any], user: str = ADMIN) -> dict[str, Any]:
        """Open the modal and submit it."""
        return await self.submit(await self.click(user), state, user)


def values(
    key: str | None = US_KEY,
    region: str = "US",
    kind: str = "api",
    client: str | None = None,
    *,
    disconnect: bool = False,
) -> dict[str, Any]:
    """The modal's state.values as Slack sends them."""

    def radio(value: str) -> dict[str, Any]:
        option = {"value": value, "text": {"type": "plain_text", "text": value}}
        return {"type": "radio_buttons", "selected_option": option}

    boxes = [{"value": DISCONNECT, "text": {"type": "plain_text", "text": "x"}}]
    return {
        KEY_BLOCK: {KEY_ACTION: {"type": "plain_text_input", "value": key}},
        REGION_BLOCK: {REGION_ACTION: radio(region)},
        KIND_BLOCK: {KIND_ACTION: radio(kind)},
        CLIENT_BLOCK: {CLIENT_ACTION: {"type": "plain_text_input", "value": client}},
        DISCONNECT_BLOCK: {
            DISCONNECT_ACTION: {
                "type": "checkboxes",
                "selected_options": boxes if disconnect else [],
            }
        },
    }


def organisation(key: str, uuid: str, clock: ManualClock) -> RhombusSimulator:
    """An organisation with its own key."""
    return RhombusSimulator(api_key=key, org_uuid=uuid, clock=clock, epoch=1_764_000_000)


@pytest.fixture
async def regions() -> AsyncIterator[tuple[RhombusCloud, RhombusCloud]]:
    """US: Acme, and Globex and Initech with a partner managing Globex; EU: Euro."""
    clock = ManualClock(1_000.0)
    us, eu = RhombusCloud("US"), RhombusCloud("EU")
    us.add_org(organisation(US_KEY, ACME, clock))
    globex = us.add_org(organisation("rk-globex-own-key", GLOBEX, clock))
    us.add_org(organisation("rk-initech-own-key", INITECH, clock))
    us.add_partner(PARTNER_KEY, [globex])
    eu.add_org(organisation(EU_KEY, EURO, clock))
    async with us, eu:
        yield us, eu
    for exchange in us.exchanges + eu.exchanges:
        validate_exchange(exchange)


async def start_rig(
    slack: SlackSimulator,
    regions: tuple[RhombusCloud, RhombusCloud],
    tmp_path: Path,
    check_seconds: float,
) -> AsyncIterator[Rig]:
    """The rig, running until the test ends."""
    people = slack.views.people
    people[ADMIN].is_admin = True
    people[OWNER] = Person(OWNER, "owen", is_owner=True)
    people[PRIMARY] = Person(PRIMARY, "prima", is_owner=True, is_primary_owner=True)
    people[INSTALLER] = Person(INSTALLER, "carol")
    people[GUEST] = Person(GUEST, "guest", is_restricted=True)
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await store.open()
    us, eu = regions
    keys = RhombusKeys(store, SecretBox([SecretBox.new_key()]))
    app = build_app(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), SIGNING_SECRET)
    changed: list[str] = []

    async def installer(team_id: str) -> str | None:
        return INSTALLER if team_id == TEAM else None

    async def on_change(team_id: str, _user_id: str) -> None:
        changed.append(team_id)

    async def healthy() -> tuple[bool, dict[str, object]]:
        return True, {}

    connecting = Connecting(
        keys=keys,
        installer=installer,
        urls=lambda region: us.url if region == "US" else eu.url,
        on_change=on_change,
        check_seconds=check_seconds,
    )
    connecting.register(app)
    server = Server(app, signing_secret=SIGNING_SECRET, health=healthy)
    port = await server.start("127.0.0.1", 0)
    try:
        yield Rig(f"http://127.0.0.1:{port}/slack/events", slack, us, eu, keys, changed)
    finally:
        await server.finish(1.0)
        await server.close()
        await connecting.close(1.0)
        await store.close()


@pytest.fixture
async def rig(
    slack: SlackSimulator, regions: tuple[RhombusCloud, RhombusCloud], tmp_path: Path
) -> AsyncIterator[Rig]:
    """The Connect listeners in a real Bolt app behind the real endpoint."""
    async for running in start_rig(slack, regions, tmp_path, check_seconds=2.0):
        yield running


def rhombus_calls(cloud: RhombusCloud) -> list[tuple[str, str]]:
    """Each call a region received: its path and the key it carried."""
    return [(e.path, e.headers.get("x-auth-apikey", "")) for e in cloud.exchanges]


async def test_an_admin_connects_a_us_key_after_one_rhombus_call(rig: Rig) -> None:
    """The first modal asks for everything; a good key is checked once, saved, and announced."""
    view = await rig.click()
    assert CONNECT_MODAL == view["callback_id"]
    assert "optional" not in view["blocks"][0]

    assert {} == await rig.submit(view, values())
    connection = await rig.keys.get(TEAM)
    assert connection is not None
    assert (US_KEY, "US", "api", None, ADMIN) == (
        connection.api_key.get_secret_value(),
        connection.region,
        connection.kind,
        connection.client_org,
        connection.connected_by,
    )
    assert [(LIST_CLIPS_PATH, US_KEY)] == rhombus_calls(rig.us)
    assert {"pageSize": 1} == rig.us.orgs[0].exchanges[0].json
    await wait_until(lambda: rig.changed == [TEAM])


async def test_a_wrong_key_is_refused_under_the_key_and_not_saved(rig: Rig) -> None:
    """A key Rhombus does not know comes back under the key (and the region), nothing stored."""
    answer = await rig.connect(values("rk-not-a-real-key-0000"))

    assert "errors" == answer["response_action"]
    assert "Rhombus did not accept this key in the US region" in answer["errors"][KEY_BLOCK]
    assert await rig.keys.get(TEAM) is None
    assert [] == rig.changed


async def test_a_key_from_the_other_region_says_to_choose_it(rig: Rig) -> None:
    """An EU key with US chosen: refused, naming EU; with EU chosen it connects."""
    view = await rig.click()
    answer = await rig.submit(view, values(EU_KEY, "US"))
    assert "Rhombus did not accept this key in the US region" in answer["errors"][KEY_BLOCK]
    assert (
        "If your organisation is on Rhombus's EU servers, choose EU."
        == (answer["errors"][REGION_BLOCK])
    )

    assert {} == await rig.submit(view, values(EU_KEY, "EU"))
    connection = await rig.keys.get(TEAM)
    assert connection is not None
    assert "EU" == connection.region
    assert [(LIST_CLIPS_PATH, EU_KEY)] == rhombus_calls(rig.eu)


@pytest.mark.parametrize("user", [ADMIN, OWNER, PRIMARY, INSTALLER])
async def test_admins_owners_and_the_installer_may_connect(rig: Rig, user: str) -> None:
    """Each of them gets the modal, and their key is saved as theirs."""
    view = await rig.click(user)
    assert CONNECT_MODAL == view.get("callback_id")
    assert {} == await rig.submit(view, values(), user)
    connection = await rig.keys.get(TEAM)
    assert connection is not None
    assert user == connection.connected_by


@pytest.mark.parametrize("user", [MEMBER, GUEST, "U0STRANGER"])
async def test_anyone_else_is_told_who_may_and_cannot_submit(rig: Rig, user: str) -> None:
    """Members and guests see who may connect; a forged submission is refused before Rhombus."""
    view = await rig.click(user)
    assert "callback_id" not in view
    assert "submit" not in view
    (text,) = [block["text"]["text"] for block in view["blocks"]]
    assert f"Only a workspace admin or owner, or <@{INSTALLER}> who installed the app" in text

    forged = {"type": "modal", "callback_id": CONNECT_MODAL, "blocks": []}
    answer = await rig.submit(forged, values(), user)
    assert {"response_action": "errors", "errors": {KEY_BLOCK: NOT_ALLOWED}} == answer
    assert ([], None) == (rhombus_calls(rig.us), await rig.keys.get(TEAM))


async def test_a_partner_key_connects_for_the_client_it_manages(rig: Rig) -> None:
    """With x-auth-org the client it manages, a partner key is saved; another client is named."""
    view = await rig.click()
    answer = await rig.submit(view, values(PARTNER_KEY, kind="partner", client=INITECH))
    assert (
        "Check that this partner key manages this client organisation."
        == (answer["errors"][CLIENT_BLOCK])
    )
    answer = await rig.submit(view, values(PARTNER_KEY, kind="partner"))
    assert [CLIENT_BLOCK] == list(answer["errors"])

    assert {} == await rig.submit(view, values(PARTNER_KEY, kind="partner", client=GLOBEX))
    connection = await rig.keys.get(TEAM)
    assert connection is not None
    assert ("partner", GLOBEX, "partner-api-token") == (
        connection.kind,
        connection.client_org,
        connection.auth_scheme,
    )
    last = rig.us.orgs[1].exchanges[-1]
    assert (GLOBEX, "partner-api-token") == (
        last.headers["x-auth-org"],
        last.headers["x-auth-scheme"],
    )
    globex = rig.us.orgs[1]
    assert [PARTNER_KEY] == [e.headers["x-auth-apikey"] for e in globex.exchanges]


async def test_changing_keeps_the_key_when_left_empty_and_disconnect_removes_it(rig: Rig) -> None:
    """Connected: the modal shows …ab12; empty key re-checks the stored one; Disconnect forgets."""
    assert {} == await rig.connect(values())
    view = await rig.click()
    assert "Leave empty to keep the key ending …ab12." == view["blocks"][1]["hint"]["text"]
    assert US_KEY not in json.dumps(view)

    assert {} == await rig.submit(view, values(None), OWNER)
    connection = await rig.keys.get(TEAM)
    assert connection is not None
    assert (US_KEY, OWNER) == (connection.api_key.get_secret_value(), connection.connected_by)
    assert [US_KEY, US_KEY] == [key for _, key in rhombus_calls(rig.us)]

    assert {} == await rig.submit(view, values(None, disconnect=True))
    assert await rig.keys.get(TEAM) is None
    assert 2 == len(rhombus_calls(rig.us))  # disconnecting asks nothing of Rhombus
    await wait_until(lambda: rig.changed == [TEAM] * 3)


async def test_rhombus_rate_limiting_says_when_to_try_again(rig: Rig) -> None:
    """A 429 while checking: try again in Retry-After seconds; nothing saved."""
    rig.us.orgs[0].inject(Fault("rate_limit", retry_after=7))
    answer = await rig.connect(values())
    assert (
        "Rhombus is limiting this organisation's calls; try in 7 s."
        == (answer["errors"][KEY_BLOCK])
    )
    assert await rig.keys.get(TEAM) is None


@pytest.mark.parametrize("fault", [Fault("server_error", status=503), Fault("disconnect")])
async def test_rhombus_failing_says_to_try_again(rig: Rig, fault: Fault) -> None:
    """Rhombus down or hanging up: the key is not checked yet; try again."""
    rig.us.orgs[0].inject(fault)
    answer = await rig.connect(values())
    assert "try again in a moment" in answer["errors"][KEY_BLOCK]
    assert await rig.keys.get(TEAM) is None


async def test_a_slow_rhombus_is_answered_within_slacks_3_seconds(
    slack: SlackSimulator, regions: tuple[RhombusCloud, RhombusCloud], tmp_path: Path
) -> None:
    """Rhombus answering after the check's time: Slack gets "try again" in time."""
    async for rig in start_rig(slack, regions, tmp_path, check_seconds=0.3):
        rig.us.orgs[0].inject(Fault("slow", delay=3.0))
        view = await rig.click()
        started = time.monotonic()
        answer = await rig.submit(view, values())
        assert time.monotonic() - started < 1.5
        assert "did not answer in time" in answer["errors"][KEY_BLOCK]
        assert await rig.keys.get(TEAM) is None


async def test_the_key_is_never_logged_nor_sent_back_to_slack(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong key, right key, change and disconnect: no key in logs, answers or Slack calls."""
    caplog.set_level(logging.DEBUG)
    view = await rig.click()
    await rig.submit(view, values(EU_KEY))
    await rig.submit(view, values(PARTNER_KEY, kind="partner", client=GLOBEX))
    await rig.submit(view, values(US_KEY))
    await rig.submit(await rig.click(), values(None, disconnect=True))
    await wait_until(lambda: len(rig.changed) == 3)

    said_to_slack = json.dumps(
        [(call.args, call.response) for call in rig.slack.calls], ensure_ascii=False
    )
    for key in KEYS_SEEN:
        assert key not in caplog.text
        assert key not in "".join(rig.answers)
        assert key not in said_to_slack
    assert "…ab12" in said_to_slack  # all that is shown of the key once connected
    assert "Rhombus connected by U0ALICE (US, api key)" in caplog.text  # the logs were read
