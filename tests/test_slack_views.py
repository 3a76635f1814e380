"""The Slack stand-in's views.open and users.info, over HTTP, as Slack's docs describe them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from standins.rhombus import ManualClock
from standins.slack import SlackSimulator
from standins.slack_views import Person

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

MODAL: dict[str, Any] = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Make a clip"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
}


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    """A running stand-in whose trigger ids age on a manual clock."""
    async with SlackSimulator(bot_token="xoxb-t") as running:
        running.views.clock = ManualClock(0.0)
        yield running


@pytest.fixture
def client(sim: SlackSimulator) -> AsyncWebClient:
    """slack_sdk's own client, pointed at the stand-in."""
    return AsyncWebClient(token="xoxb-t", base_url=sim.api_url)


async def error_of(call: Any) -> str:  # any awaitable Web API call
    """The error code a call fails with."""
    with pytest.raises(SlackApiError) as failed:
        await call
    return str(failed.value.response["error"])


async def test_a_trigger_opens_one_view_within_three_seconds(sim, client):
    """Issued triggers work once and for 3 s; unknown ones are invalid."""
    fresh, late = sim.views.trigger(), sim.views.trigger()
    opened = await client.views_open(trigger_id=fresh, view=MODAL)
    sim.views.clock.advance(3.5)

    assert opened["view"]["id"].startswith("V")
    assert [MODAL] == sim.views.opened
    assert "exchanged_trigger_id" == await error_of(client.views_open(trigger_id=fresh, view=MODAL))
    assert "expired_trigger_id" == await error_of(client.views_open(trigger_id=late, view=MODAL))
    assert "invalid_trigger_id" == await error_of(client.views_open(trigger_id="1.2.3", view=MODAL))


@pytest.mark.parametrize(
    ("view", "error"),
    [
        ({**MODAL, "type": "home"}, "invalid_arguments"),
        ({**MODAL, "blocks": MODAL["blocks"] * 101}, "invalid_blocks"),
        ({**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}, "invalid_arguments"),
    ],
)
async def test_views_that_slack_refuses_are_refused(sim, client, view, error):
    """Not a modal, a title over 24 characters, over 100 blocks: refused, nothing opened."""
    assert error == await error_of(client.views_open(trigger_id=sim.views.trigger(), view=view))
    assert [] == sim.views.opened


async def test_users_info_gives_the_time_zone_and_needs_users_read(sim, client):
    """users.info tells tz and tz_offset; unknown people and a missing scope are errors."""
    sim.views.people["U0ALICE"].tz = "Pacific/Auckland"
    sim.views.people["U0ALICE"].tz_offset = 46800
    user = (await client.users_info(user="U0ALICE"))["user"]

    assert ("Pacific/Auckland", 46800) == (user["tz"], user["tz_offset"])
    assert "user_not_found" == await error_of(client.users_info(user="U0NOBODY"))
    sim.scopes = sim.scopes - {"users:read"}
    assert "missing_scope" == await error_of(client.users_info(user="U0ALICE"))


async def test_users_info_tells_admins_owners_and_guests(sim, client):
    """Each person's role flags, as Slack's user object has them; members have none set."""
    sim.views.people["U0ALICE"].is_admin = True
    sim.views.people["U0BOB"] = Person("U0BOB", "bob", is_owner=True, is_primary_owner=True)
    sim.views.people["U0GUEST"] = Person("U0GUEST", "guest", is_restricted=True)
    flags = ("is_admin", "is_owner", "is_primary_owner", "is_restricted", "is_ultra_restricted")

    def role(user: dict[str, Any]) -> list[str]:
        return [flag for flag in flags if user[flag] is True]

    people = [(await client.users_info(user=u))["user"] for u in ("U0ALICE", "U0BOB", "U0GUEST")]
    assert [["is_admin"], ["is_owner", "is_primary_owner"], ["is_restricted"]] == [
        role(user) for user in people
    ]
