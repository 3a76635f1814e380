"""The fake Slack's views.publish, views.open and chat.unfurl, driven by slack_sdk's own client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from standins.slack import DEFAULT_SCOPES, SlackSimulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from slack_sdk.web.async_slack_response import AsyncSlackResponse

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Clip* is rendering"}}
HOME = {"type": "home", "blocks": [SECTION]}
URL = "https://console.rhombussystems.com/clips/LobbyClip0123456789abc"


@pytest.fixture
async def slack() -> AsyncIterator[SlackSimulator]:
    """A fake Slack with the default workspace, serving on a free port."""
    async with SlackSimulator() as simulator:
        yield simulator


@pytest.fixture
def client(slack: SlackSimulator) -> AsyncWebClient:
    """slack_sdk's own Web API client, pointed at the fake with the bot token."""
    return AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)


async def error_code(call: Awaitable[AsyncSlackResponse]) -> str:
    """The `error` of the `ok: false` answer an awaited client call gets."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


async def test_views_publish_keeps_each_version_and_answers_a_hash(slack, client):
    """A published Home is kept per person; its hash guards the next publish."""
    first = await client.views_publish(user_id="U0ALICE", view=HOME)
    second = await client.views_publish(user_id="U0ALICE", view=HOME, hash=first["view"]["hash"])

    home = slack.surfaces.homes["U0ALICE"]
    assert [[SECTION], [SECTION]] == home.versions
    assert first["view"]["id"] == second["view"]["id"] == home.id
    assert "hash_conflict" == await error_code(
        client.views_publish(user_id="U0ALICE", view=HOME, hash=first["view"]["hash"])
    )


async def test_views_publish_refuses_what_slack_refuses(slack, client):
    """Over 100 blocks, a bad block, a modal, no user, too large, or the tab disabled."""
    too_many = {"type": "home", "blocks": [SECTION] * 101}
    bad_block = {"type": "home", "blocks": [{"type": "header", "text": {"type": "plain_text"}}]}
    huge = {"type": "home", "blocks": [SECTION], "private_metadata": "x" * 300_000}

    assert "invalid_blocks" == await error_code(client.views_publish(user_id="U1", view=too_many))
    assert "invalid_blocks" == await error_code(client.views_publish(user_id="U1", view=bad_block))
    assert "invalid_arguments" == await error_code(
        client.views_publish(user_id="U1", view={"type": "modal", "blocks": []})
    )
    assert "invalid_arguments" == await error_code(
        client.api_call("views.publish", json={"view": HOME})
    )
    assert "view_too_large" == await error_code(client.views_publish(user_id="U1", view=huge))
    slack.surfaces.home_tab_enabled = False
    assert "not_enabled" == await error_code(client.views_publish(user_id="U1", view=HOME))
    assert {} == slack.surfaces.homes


async def test_views_open_opens_a_modal_once_per_trigger(slack, client):
    """A modal needs a title of at most 24 characters; a trigger opens one modal."""
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Follow"}, "blocks": []}

    trigger = slack.views.trigger()
    await client.views_open(trigger_id=trigger, view=modal)

    assert 1 == len(slack.surfaces.modals)
    assert "exchanged_trigger_id" == await error_code(
        client.views_open(trigger_id=trigger, view=modal)
    )
    long_title = modal | {"title": {"type": "plain_text", "text": "t" * 25}}
    assert "invalid_arguments" == await error_code(
        client.views_open(trigger_id=slack.views.trigger(), view=long_title)
    )
    with_input = modal | {
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "Channel"},
                "element": {"type": "conversations_select", "action_id": "c"},
            }
        ]
    }
    assert "invalid_arguments" == await error_code(
        client.views_open(trigger_id=slack.views.trigger(), view=with_input)
    )


async def test_chat_unfurl_attaches_to_the_message_and_edits_the_same_unfurl(slack, client):
    """Unfurling the same channel and ts again modifies the same unfurl."""
    message = slack.post_user_message("C0GENERAL", f"see {URL}")

    for _ in range(2):
        await client.chat_unfurl(
            channel="C0GENERAL", ts=message.ts, unfurls={URL: {"blocks": [SECTION]}}
        )

    unfurl = slack.surfaces.unfurl_of("C0GENERAL", message.ts, URL)
    assert unfurl is not None
    assert [[SECTION], [SECTION]] == unfurl.versions


async def test_chat_unfurl_errors(slack, client):
    """A missing message, a URL not in it, rich text, too many blocks, half an address."""
    message = slack.post_user_message("C0GENERAL", URL)
    rich = {"type": "rich_text", "elements": []}

    async def unfurl(blocks=None, **where):
        return await error_code(
            client.chat_unfurl(unfurls={URL: {"blocks": blocks or [SECTION]}}, **where)
        )

    assert "cannot_find_message" == await unfurl(channel="C0GENERAL", ts="1.000001")
    assert "cannot_find_channel" == await unfurl(channel="C0NOPE", ts=message.ts)
    assert "invalid_blocks" == await unfurl([rich], channel="C0GENERAL", ts=message.ts)
    assert "invalid_blocks" == await unfurl([SECTION] * 51, channel="C0GENERAL", ts=message.ts)
    assert "invalid_arguments" == await unfurl(unfurl_id="U1")
    other = slack.post_user_message("C0GENERAL", "no link here")
    assert "cannot_unfurl_url" == await unfurl(channel="C0GENERAL", ts=other.ts)
    assert {} == slack.surfaces.unfurls


async def test_chat_unfurl_needs_links_write():
    """Without links:write, chat.unfurl answers missing_scope."""
    async with SlackSimulator(scopes=DEFAULT_SCOPES - {"links:write"}) as slack:
        client = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)
        message = slack.post_user_message("C0GENERAL", URL)

        assert "missing_scope" == await error_code(
            client.chat_unfurl(channel="C0GENERAL", ts=message.ts, unfurls={URL: {"blocks": []}})
        )
