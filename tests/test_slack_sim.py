"""The fake Slack, driven over real HTTP and WebSocket by slack_sdk's and Bolt's own clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from standins.rhombus import ManualClock
from standins.slack import SlackSimulator
from standins.slack_requests import (
    SignatureMode,
    block_action,
    message_shortcut,
    post,
    send_over_socket,
    sign,
    signature_headers,
    slash_command,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from slack_bolt.context.ack.async_ack import AsyncAck
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
    from slack_sdk.socket_mode.request import SocketModeRequest
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

SECRET = "sim-signing-secret"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Clip* is rendering"}}
BAD_SIGNATURES: list[SignatureMode] = ["wrong", "missing", "old"]


@pytest.fixture
async def slack() -> AsyncIterator[SlackSimulator]:
    """A fake Slack with the default workspace, serving on a free port."""
    async with SlackSimulator() as simulator:
        yield simulator


@pytest.fixture
def client(slack: SlackSimulator) -> AsyncWebClient:
    """slack_sdk's own Web API client, pointed at the fake with the bot token."""
    return AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)


async def slack_error(call: Awaitable[AsyncSlackResponse]) -> SlackApiError:
    """The SlackApiError an awaited client call raises."""
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value


async def error_code(call: Awaitable[AsyncSlackResponse]) -> str:
    """The `error` of the `ok: false` answer an awaited client call gets."""
    return str((await slack_error(call)).response["error"])


# -- Web API: what a healthy workspace answers -------------------------------------------------


async def test_auth_test_answers_with_the_bot_identity(client: AsyncWebClient) -> None:
    """auth.test tells the bot who it is, as Bolt expects at start-up."""
    expected = {
        "ok": True,
        "url": "https://sim.slack.com/",
        "team": "Sim",
        "user": "clipbot",
        "team_id": "T0SIM",
        "user_id": "U0BOT",
        "bot_id": "B0BOT",
        "is_enterprise_install": False,
    }

    assert expected == (await client.auth_test()).data


async def test_post_message_stores_the_message_with_its_first_revision(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """chat.postMessage answers channel and ts and keeps the message as posted."""
    response = await client.chat_postMessage(
        channel="C0GENERAL",
        text="Clip is rendering",
        blocks=[SECTION],
        unfurl_links=False,
        unfurl_media=False,
    )

    message = slack.messages["C0GENERAL", response["ts"]]
    expected = ("C0GENERAL", "U0BOT", "Clip is rendering", [SECTION], False, False)
    assert expected == (
        response["channel"],
        message.user,
        message.text,
        message.blocks,
        message.unfurl_links,
        message.unfurl_media,
    )
    expected_revisions = [("chat.postMessage", "Clip is rendering", [SECTION])]
    assert expected_revisions == [(rev.method, rev.text, rev.blocks) for rev in message.revisions]


async def test_timestamps_are_unique_increasing_and_shaped_like_slacks(
    client: AsyncWebClient,
) -> None:
    """Each post gets a later ts of the form seconds.microseconds."""
    stamps = [(await client.chat_postMessage(channel="C0GENERAL", text="hi"))["ts"] for _ in "abc"]

    assert sorted(set(stamps), key=float) == stamps
    expected_shape = [(10, 6)] * 3
    assert expected_shape == [tuple(len(part) for part in ts.split(".")) for ts in stamps]


async def test_form_encoded_bodies_and_token_arguments_work_like_json(
    slack: SlackSimulator,
) -> None:
    """A form post naming the channel, with blocks as a JSON string and a token argument, works."""
    form = {
        "token": "xoxb-sim",
        "channel": "#general",
        "text": "from a form",
        "blocks": json.dumps([SECTION]),
    }
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{slack.api_url}chat.postMessage", data=form)

    body = response.json()
    expected = (True, "C0GENERAL", [SECTION], "xoxb-sim")
    assert expected == (
        body["ok"],
        body["channel"],
        slack.messages["C0GENERAL", body["ts"]].blocks,
        slack.calls[-1].token,
    )


async def test_a_malformed_json_body_is_invalid_json(slack: SlackSimulator) -> None:
    """A JSON body that does not parse answers invalid_json, as Slack does."""
    headers = {"Authorization": "Bearer xoxb-sim", "Content-Type": "application/json"}
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(
            f"{slack.api_url}chat.postMessage", content=b"{not json", headers=headers
        )

    expected = (200, {"ok": False, "error": "invalid_json"})
    assert expected == (response.status_code, response.json())


async def test_update_records_every_revision_in_order(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """Each chat.update adds a revision; the message shows the newest one."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="Uploading", blocks=[SECTION])
    rendering = {"type": "section", "text": {"type": "plain_text", "text": "Rendering"}}
    updated = await client.chat_update(
        channel="C0GENERAL", ts=posted["ts"], text="Rendering", blocks=[rendering]
    )

    message = slack.messages["C0GENERAL", posted["ts"]]
    assert (posted["ts"], "Rendering") == (updated["ts"], updated["text"])
    expected = [
        ("chat.postMessage", "Uploading", [SECTION]),
        ("chat.update", "Rendering", [rendering]),
    ]
    assert expected == [(rev.method, rev.text, rev.blocks) for rev in message.revisions]


async def test_update_with_text_only_removes_the_blocks(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """chat.update with text and no blocks deletes the blocks and marks the message edited."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="Uploading", blocks=[SECTION])
    updated = await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="Done")

    expected: tuple[list[dict[str, Any]], str, bool, bool] = ([], "Done", False, True)
    assert expected == (
        slack.messages["C0GENERAL", posted["ts"]].blocks,
        updated["text"],
        "blocks" in updated["message"],
        "edited" in updated["message"],
    )


async def test_post_ephemeral_is_recorded_with_its_message_ts(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """chat.postEphemeral answers message_ts and records who was told what."""
    response = await client.chat_postEphemeral(
        channel="C0GENERAL", user="U0ALICE", text="Clip not found"
    )

    [ephemeral] = slack.ephemerals
    expected = ("chat.postEphemeral", "C0GENERAL", "U0ALICE", "Clip not found")
    assert expected == (ephemeral.source, ephemeral.channel, ephemeral.user, ephemeral.text)
    assert response["message_ts"] == ephemeral.message_ts


async def test_get_permalink_builds_slacks_archive_url(client: AsyncWebClient) -> None:
    """chat.getPermalink answers https://{domain}.slack.com/archives/{channel}/p{ts without dot}."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="status")
    reply = await client.chat_postMessage(channel="C0GENERAL", text="reply", thread_ts=posted["ts"])

    parent_link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=posted["ts"])
    reply_link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"])

    expected_parent = f"https://sim.slack.com/archives/C0GENERAL/p{posted['ts'].replace('.', '')}"
    expected_reply = (
        f"https://sim.slack.com/archives/C0GENERAL/p{reply['ts'].replace('.', '')}"
        f"?thread_ts={posted['ts']}&cid=C0GENERAL"
    )
    assert (expected_parent, expected_reply) == (parent_link["permalink"], reply_link["permalink"])


async def test_thread_replies_and_replies_to_missing_parents(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """Replies are listed per thread; a reply to a ts no message has still posts, and is noted."""
    parent = await client.chat_postMessage(channel="C0GENERAL", text="parent")
    first = await client.chat_postMessage(channel="C0GENERAL", text="1", thread_ts=parent["ts"])
    second = await client.chat_postMessage(
        channel="C0GENERAL", text="2", thread_ts=parent["ts"], reply_broadcast=True
    )
    orphan = await client.chat_postMessage(channel="C0GENERAL", text="?", thread_ts="1.000001")

    replies = slack.thread_replies("C0GENERAL", parent["ts"])
    expected = [(first["ts"], False), (second["ts"], True)]
    assert expected == [(reply.ts, reply.reply_broadcast) for reply in replies]
    assert slack.messages["C0GENERAL", orphan["ts"]].thread_parent_missing


async def test_delete_and_join(slack: SlackSimulator, client: AsyncWebClient) -> None:
    """chat.delete removes the bot's message; conversations.join makes the bot a member."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="bye")
    await client.chat_delete(channel="C0GENERAL", ts=posted["ts"])
    joined = await client.conversations_join(channel="C0RANDOM")

    expected = (True, True, True)
    assert expected == (
        slack.messages["C0GENERAL", posted["ts"]].deleted,
        joined["channel"]["is_member"],
        slack.channels["C0RANDOM"].is_member,
    )


# -- Web API: errors, as Slack words them --------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"channel": "C0GENERAL"}, "no_text"),
        ({"channel": "C0GENERAL", "text": "", "blocks": []}, "no_text"),
        ({"channel": "C0GENERAL", "text": "x" * 4001}, "msg_too_long"),
        (
            {
                "channel": "C0GENERAL",
                "text": "t",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        ({"channel": "C0GENERAL", "text": "t", "blocks": [SECTION] * 51}, "invalid_blocks"),
        ({"channel": "C0GENERAL", "text": "t", "blocks": [{"type": "nonsense"}]}, "invalid_blocks"),
        ({"channel": "C0GENERAL", "text": "t", "blocks": "not json"}, "invalid_blocks_format"),
        ({"channel": "C0NOWHERE", "text": "t"}, "channel_not_found"),
        ({"channel": "G0PRIVATE", "text": "t"}, "channel_not_found"),
        ({"channel": "C0ARCHIVED", "text": "t"}, "is_archived"),
        ({"text": "t"}, "invalid_arguments"),
    ],
)
async def test_post_message_errors(
    client: AsyncWebClient, arguments: dict[str, Any], expected: str
) -> None:
    """chat.postMessage refuses what Slack refuses, with Slack's error code in a 200."""
    error = await slack_error(client.api_call("chat.postMessage", json=arguments))

    assert (200, False, expected) == (
        error.response.status_code,
        error.response["ok"],
        error.response["error"],
    )


async def test_invalid_blocks_says_which_block_is_wrong(client: AsyncWebClient) -> None:
    """invalid_blocks carries a message pointing at the bad block."""
    blocks = [SECTION, {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]
    error = await slack_error(client.chat_postMessage(channel="C0GENERAL", text="t", blocks=blocks))

    [message] = error.response["response_metadata"]["messages"]
    expected = (True, True)
    assert expected == (
        message.startswith("[ERROR] "),
        message.endswith("[json-pointer:/blocks/1]"),
    )


async def test_public_channel_without_chat_write_public_is_not_in_channel() -> None:
    """Without chat:write.public, posting where the bot is not a member answers not_in_channel."""
    async with SlackSimulator(scopes={"commands", "chat:write"}) as slack:
        client = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)
        error = await error_code(client.chat_postMessage(channel="C0RANDOM", text="t"))
        member = await client.chat_postMessage(channel="C0GENERAL", text="t")

    expected = ("not_in_channel", True)
    assert expected == (error, member["ok"])


async def test_public_channel_takes_posts_from_a_non_member_with_chat_write_public(
    client: AsyncWebClient,
) -> None:
    """With the default scopes, a public channel the bot has not joined takes posts."""
    assert (await client.chat_postMessage(channel="C0RANDOM", text="t"))["ok"]


async def test_update_errors(slack: SlackSimulator, client: AsyncWebClient) -> None:
    """chat.update answers message_not_found, cant_update_message, no_text and is_inactive."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="mine")
    human = slack.post_user_message("C0GENERAL", "someone else's")
    gone = await client.chat_postMessage(channel="C0GENERAL", text="deleted soon")
    slack.delete_message("C0GENERAL", gone["ts"])

    errors = [
        await error_code(client.chat_update(channel="C0GENERAL", ts="1.000001", text="t")),
        await error_code(client.chat_update(channel="C0GENERAL", ts=gone["ts"], text="t")),
        await error_code(client.chat_update(channel="C0GENERAL", ts=human.ts, text="t")),
        # chat_update() would warn about the missing text; api_call sends the body as is.
        await error_code(
            client.api_call("chat.update", json={"channel": "C0GENERAL", "ts": posted["ts"]})
        ),
    ]
    slack.archive_channel("C0GENERAL")
    errors.append(
        await error_code(client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="t"))
    )

    expected = [
        "message_not_found",
        "message_not_found",
        "cant_update_message",
        "no_text",
        "is_inactive",
    ]
    assert expected == errors


async def test_update_validates_content_like_post(client: AsyncWebClient) -> None:
    """chat.update refuses a too-long text and too many blocks, as chat.postMessage does."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="t")
    too_long = client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="x" * 4001)
    too_many = client.chat_update(
        channel="C0GENERAL", ts=posted["ts"], text="t", blocks=[SECTION] * 51
    )

    expected = ["msg_too_long", "invalid_blocks"]
    assert expected == [await error_code(too_long), await error_code(too_many)]


async def test_permalink_of_a_missing_message_is_message_not_found(
    client: AsyncWebClient,
) -> None:
    """chat.getPermalink of an unknown ts answers message_not_found."""
    error = await error_code(client.chat_getPermalink(channel="C0GENERAL", message_ts="1.000001"))

    expected = "message_not_found"
    assert expected == error


async def test_tokens_missing_wrong_revoked_and_of_the_wrong_kind(slack: SlackSimulator) -> None:
    """Slack answers not_authed, invalid_auth, not_allowed_token_type and token_revoked."""
    no_token = AsyncWebClient(base_url=slack.api_url)
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    app_token = AsyncWebClient(token="xapp-sim", base_url=slack.api_url)
    bot = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)

    errors = [
        await error_code(no_token.auth_test()),
        await error_code(wrong.auth_test()),
        await error_code(app_token.chat_postMessage(channel="C0GENERAL", text="t")),
        await error_code(bot.apps_connections_open(app_token="xoxb-sim")),
    ]
    slack.revoke_token()
    errors.append(await error_code(bot.chat_postMessage(channel="C0GENERAL", text="t")))

    expected = [
        "not_authed",
        "invalid_auth",
        "not_allowed_token_type",
        "not_allowed_token_type",
        "token_revoked",
    ]
    assert expected == errors


async def test_missing_scope_names_the_scope_needed() -> None:
    """A method whose scope the app lacks answers missing_scope with needed and provided."""
    async with SlackSimulator(scopes={"commands"}) as slack:
        client = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)
        error = await slack_error(client.chat_postMessage(channel="C0GENERAL", text="t"))

    expected = ("missing_scope", "chat:write", "commands")
    assert expected == (
        error.response["error"],
        error.response["needed"],
        error.response["provided"],
    )


async def test_unknown_method(client: AsyncWebClient) -> None:
    """A method the fake does not know answers unknown_method, as Slack does."""
    error = await slack_error(client.api_call("chat.teleport"))

    expected = ("unknown_method", "chat.teleport")
    assert expected == (error.response["error"], error.response["req_method"])


# -- Web API: injected failures ----------------------------------------------------------------


async def test_rate_limit_reaches_the_real_client_as_429_with_retry_after(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """fail(status=429, retry_after=3) surfaces as SlackApiError 429 with Retry-After: 3."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="t")
    slack.fail("chat.update", status=429, retry_after=3)

    error = await slack_error(client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="u"))
    retried = await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="u")

    expected = (429, "3", "ratelimited", True)
    assert expected == (
        error.response.status_code,
        error.response.headers["Retry-After"],
        error.response["error"],
        retried["ok"],
    )
    expected_statuses = [429, 200]
    assert expected_statuses == [call.status for call in slack.calls_to("chat.update")]


async def test_a_rate_limit_refuses_calls_over_it_until_the_minute_slides() -> None:
    """rate_limits={"chat.update": 2}: the third edit in a minute gets 429 and Retry-After."""
    clock = ManualClock(100.0)
    async with SlackSimulator(rate_limits={"chat.update": 2}, clock=clock) as slack:
        client = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)
        posted = await client.chat_postMessage(channel="C0GENERAL", text="t")
        edit = {"channel": "C0GENERAL", "ts": posted["ts"], "text": "u"}
        await client.chat_update(**edit)
        clock.advance(10)
        await client.chat_update(**edit)
        clock.advance(10)
        refused = await slack_error(client.chat_update(**edit))
        other_method = await client.chat_postMessage(channel="C0GENERAL", text="t")
        clock.advance(40.5)  # the first edit is now more than a minute old
        again = await client.chat_update(**edit)
        clock.advance(1)
        refused_again = await slack_error(client.chat_update(**edit))

    expected = (429, "40", "ratelimited", True, True, "9")
    assert expected == (
        refused.response.status_code,
        refused.response.headers["Retry-After"],
        refused.response["error"],
        other_method["ok"],
        again["ok"],
        refused_again.response.headers["Retry-After"],
    )
    expected_statuses = [200, 200, 429, 200, 429]
    assert expected_statuses == [call.status for call in slack.calls_to("chat.update")]


async def test_no_rate_limit_by_default(slack: SlackSimulator, client: AsyncWebClient) -> None:
    """Without rate_limits, sixty edits in a row all pass."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="t")

    for n in range(60):
        await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text=f"edit {n}")

    assert {200} == {call.status for call in slack.calls_to("chat.update")}


def test_a_rate_limit_below_one_call_is_refused() -> None:
    """rate_limits={"chat.update": 0} is a mistake, said at once."""
    with pytest.raises(ValueError, match="at least one call"):
        SlackSimulator(rate_limits={"chat.update": 0})


async def test_failures_can_target_a_channel_and_last_until_cleared(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """fail(channel=..., times=-1) hits only that channel until clear_failures()."""
    slack.fail("chat.postMessage", error="internal_error", channel="C0RANDOM", times=-1)

    elsewhere = await client.chat_postMessage(channel="C0GENERAL", text="t")
    errors = [await error_code(client.chat_postMessage(channel="C0RANDOM", text="t")) for _ in "ab"]
    slack.clear_failures()
    after = await client.chat_postMessage(channel="C0RANDOM", text="t")

    expected = (True, ["internal_error", "internal_error"], True)
    assert expected == (elsewhere["ok"], errors, after["ok"])


async def test_server_errors_can_come_as_an_html_page(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """fail(status=503) without an error answers an HTML page; the client still raises."""
    slack.fail("chat.postMessage", status=503)

    error = await slack_error(client.chat_postMessage(channel="C0GENERAL", text="t"))

    expected = (503, None)  # None: the body was not JSON
    assert expected == (error.response.status_code, slack.calls[-1].response)


async def test_a_delay_slows_the_answer_without_failing_it(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """fail(delay=...) alone holds the answer back, then answers normally."""
    slack.fail("auth.test", delay=0.2)
    loop = asyncio.get_running_loop()

    started = loop.time()
    response = await client.auth_test()

    assert response["ok"]
    assert loop.time() - started >= 0.2


async def statuses_with_random_failures(seed: int) -> list[int]:
    """The statuses of 40 auth.test calls to a fake seeded with `seed`, half of them spoiled."""
    async with SlackSimulator(seed=seed) as slack:
        slack.fail("auth.test", error="internal_error", status=500, times=-1, probability=0.5)
        client = AsyncWebClient(token="xoxb-sim", base_url=slack.api_url)
        for _ in range(40):
            with contextlib.suppress(SlackApiError):
                await client.auth_test()
        return [call.status for call in slack.calls_to("auth.test")]


async def test_a_failure_with_a_probability_spoils_some_calls_the_same_for_a_seed() -> None:
    """fail(probability=0.5) spoils some calls and spares others, the same ones for one seed."""
    first = await statuses_with_random_failures(seed=7)
    again = await statuses_with_random_failures(seed=7)

    expected = {200, 500}
    assert expected == set(first)
    assert first == again


async def test_a_probable_failure_counts_only_the_calls_it_spoiled(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """With a probability, `times` counts spoiled calls: exactly that many fail in the end."""
    slack.fail("auth.test", error="internal_error", status=500, times=3, probability=0.3)

    for _ in range(60):
        with contextlib.suppress(SlackApiError):
            await client.auth_test()

    expected = 3
    assert expected == sum(1 for call in slack.calls_to("auth.test") if call.status == 500)


def test_a_probability_outside_zero_to_one_is_refused(slack: SlackSimulator) -> None:
    """fail(probability=1.5) is a mistake, said at once."""
    with pytest.raises(ValueError, match="probability"):
        slack.fail("auth.test", probability=1.5)


async def test_wait_for_times_out_with_a_summary_of_recent_calls(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """wait_for raises TimeoutError naming the calls made so far."""
    await client.auth_test()

    with pytest.raises(TimeoutError, match=r"auth\.test -> 200 ok"):
        await slack.wait_for(lambda sim: len(sim.messages) > 0, timeout=0.1)


async def test_wait_for_wakes_on_a_call_and_on_call_sees_it(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """wait_for returns once a call satisfies it; on_call saw every call."""
    seen: list[str] = []
    slack.on_call = lambda call: seen.append(call.method)

    waiting = asyncio.create_task(slack.wait_for(lambda sim: len(sim.messages) == 1))
    await client.chat_postMessage(channel="C0GENERAL", text="t")
    await waiting

    expected = ["chat.postMessage"]
    assert expected == seen


# -- response_url ----------------------------------------------------------------------------


async def test_response_url_posts_are_recorded(slack: SlackSimulator) -> None:
    """A post to a response_url (as Bolt's respond() makes it) is recorded."""
    webhook = AsyncWebhookClient(slack.response_url("r1"))

    response = await webhook.send(text="Following clip", response_type="in_channel")

    [ephemeral] = slack.ephemerals
    expected = (200, "response_url", "r1", "in_channel", "Following clip")
    assert expected == (
        response.status_code,
        ephemeral.source,
        ephemeral.response_url_id,
        ephemeral.response_type,
        ephemeral.text,
    )


async def test_response_url_works_five_times(slack: SlackSimulator) -> None:
    """Slack accepts five posts per response_url; the sixth is refused."""
    webhook = AsyncWebhookClient(slack.response_url())

    statuses = [(await webhook.send(text=f"try {n}")).status_code for n in range(6)]

    expected = ([200, 200, 200, 200, 200, 404], 5)
    assert expected == (statuses, len(slack.ephemerals))


async def test_response_url_of_a_message_can_replace_it(
    slack: SlackSimulator, client: AsyncWebClient
) -> None:
    """replace_original on a message's response_url edits that message."""
    posted = await client.chat_postMessage(channel="C0GENERAL", text="Rendering")
    url = slack.response_url(channel="C0GENERAL", ts=posted["ts"])

    await AsyncWebhookClient(url).send(text="Stopped following", replace_original=True)

    message = slack.messages["C0GENERAL", posted["ts"]]
    expected = (["chat.postMessage", "response_url"], "Stopped following")
    assert expected == ([rev.method for rev in message.revisions], message.text)


# -- Socket Mode -------------------------------------------------------------------------------


@asynccontextmanager
async def connected(socket: SocketModeClient) -> AsyncIterator[SocketModeClient]:
    """slack_sdk's Socket Mode client, connected until the block ends (its methods are untyped)."""
    try:
        await socket.connect()
        yield socket
    finally:
        await socket.close()


def socket_client(slack: SlackSimulator) -> SocketModeClient:
    """A Socket Mode client that opens its connection through the fake's apps.connections.open."""
    return SocketModeClient(app_token="xapp-sim", web_client=AsyncWebClient(base_url=slack.api_url))


async def test_socket_mode_client_connects_and_acks_an_envelope(slack: SlackSimulator) -> None:
    """slack_sdk's SocketModeClient connects, gets an envelope, and its ack comes back."""
    received: list[SocketModeRequest] = []

    async def acknowledge(app: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await app.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": "On it"})
        )

    socket = socket_client(slack)
    socket.socket_mode_request_listeners.append(acknowledge)
    async with connected(socket):
        await slack.wait_for_socket_connection()
        ack = await slack.send_socket_request("slash_commands", {"command": "/clip", "text": "x"})

    [request] = received
    expected_request = ("slash_commands", {"command": "/clip", "text": "x"}, True)
    assert expected_request == (request.type, request.payload, request.accepts_response_payload)
    assert {"envelope_id": request.envelope_id, "payload": {"text": "On it"}} == ack
    expected_tokens = ["xapp-sim"]
    assert expected_tokens == [call.token for call in slack.calls_to("apps.connections.open")]


async def test_socket_hello_and_reconnect_after_disconnect(slack: SlackSimulator) -> None:
    """The app hears hello, and reconnects through apps.connections.open when told to."""
    heard: list[dict[str, Any]] = []

    async def listen(_app: AsyncBaseSocketModeClient, message: dict[str, Any], _raw: Any) -> None:
        heard.append(message)

    socket = socket_client(slack)
    socket.message_listeners.append(listen)
    async with connected(socket):
        await slack.wait_for_socket_connection()
        await slack.send_socket_disconnect()
        await slack.wait_for(
            lambda sim: sim.socket_connections_total == 2 and sim.socket_connections == 1
        )

    expected = ("hello", 1, 2)
    assert expected == (
        heard[0]["type"],
        heard[0]["num_connections"],
        len(slack.calls_to("apps.connections.open")),
    )


async def test_an_unacknowledged_envelope_times_out(slack: SlackSimulator) -> None:
    """send_socket_request raises TimeoutError when the app never acks."""
    async with connected(socket_client(slack)):
        await slack.wait_for_socket_connection()
        with pytest.raises(TimeoutError, match="did not acknowledge"):
            await slack.send_socket_request("interactive", {"type": "block_actions"}, timeout=0.2)


async def test_send_socket_request_without_a_connection_fails_fast(slack: SlackSimulator) -> None:
    """With no app connected there is nobody to push an envelope to."""
    with pytest.raises(RuntimeError, match="no app is connected"):
        await slack.send_socket_request("slash_commands", {})


# -- signed requests ---------------------------------------------------------------------------


def test_signatures_verify_with_slack_sdk() -> None:
    """sign() makes the headers slack_sdk's SignatureVerifier accepts."""
    body = slash_command("abc", response_url="http://127.0.0.1/response/r").body

    assert SignatureVerifier(SECRET).is_valid_request(body, signature_headers(body, SECRET))


@pytest.mark.parametrize("signature", BAD_SIGNATURES)
def test_bad_signatures_do_not_verify(signature: SignatureMode) -> None:
    """Wrong, missing and old signatures are refused by SignatureVerifier."""
    body = slash_command("abc", response_url="http://127.0.0.1/response/r").body

    headers = signature_headers(body, SECRET, signature=signature)

    assert not SignatureVerifier(SECRET).is_valid_request(body, headers)


def test_sign_is_v0_hmac_sha256_of_version_timestamp_and_body() -> None:
    """sign() is exactly SignatureVerifier.generate_signature, with the timestamp header."""
    body = "command=%2Fclip&text=abc"

    expected = {
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
            timestamp="1531420618", body=body
        ),
        "X-Slack-Request-Timestamp": "1531420618",
    }
    assert expected == sign(body, SECRET, 1531420618)


# -- the helpers against a real Bolt app -------------------------------------------------------


def bolt_app(slack: SlackSimulator, heard: list[dict[str, Any]]) -> AsyncApp:
    """A Bolt app that acks, remembers each body and answers through respond()."""
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-sim", base_url=slack.api_url), signing_secret=SECRET
    )

    async def listener(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        heard.append(body)
        await respond(text=f"heard {body.get('command') or body['type']}")

    app.command("/clip")(listener)
    app.shortcut("clip_status")(listener)
    app.action("refresh")(listener)
    return app


@pytest.fixture
async def bolt(slack: SlackSimulator) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Bolt HTTP endpoint on 127.0.0.1, and the bodies its listeners heard."""
    heard: list[dict[str, Any]] = []
    runner = web.AppRunner(bolt_app(slack, heard).web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/slack/events", heard
    finally:
        await runner.cleanup()


async def test_bolt_accepts_signed_requests_and_respond_lands_in_the_fake(
    slack: SlackSimulator, bolt: tuple[str, list[dict[str, Any]]]
) -> None:
    """A signed command, shortcut and button click reach Bolt; respond() posts to the fake."""
    url, heard = bolt
    message = slack.post_user_message("C0GENERAL", "see clip abc")
    requests = [
        slash_command("abc", response_url=slack.response_url("command")),
        message_shortcut(
            message, callback_id="clip_status", response_url=slack.response_url("shortcut")
        ),
        block_action("refresh", "abc", message=message, response_url=slack.response_url("button")),
    ]

    statuses = [
        (await post(url, request, signing_secret=SECRET)).status_code for request in requests
    ]
    await slack.wait_for(lambda sim: len(sim.ephemerals) == 3)

    expected_statuses = [200, 200, 200]
    assert expected_statuses == statuses
    expected_bodies = [
        ("/clip", "abc", "C0GENERAL"),
        ("message_action", message.ts, "C0GENERAL"),
        ("block_actions", "refresh", "C0GENERAL"),
    ]
    assert expected_bodies == [
        (heard[0]["command"], heard[0]["text"], heard[0]["channel_id"]),
        (heard[1]["type"], heard[1]["message"]["ts"], heard[1]["channel"]["id"]),
        (heard[2]["type"], heard[2]["actions"][0]["action_id"], heard[2]["channel"]["id"]),
    ]
    expected_answers = {
        ("command", "heard /clip"),
        ("shortcut", "heard message_action"),
        ("button", "heard block_actions"),
    }
    assert expected_answers == {(e.response_url_id, e.text) for e in slack.ephemerals}
    expected_tokens = ["xoxb-sim"]
    assert expected_tokens == [call.token for call in slack.calls_to("auth.test")]


@pytest.mark.parametrize("signature", BAD_SIGNATURES)
async def test_bolt_refuses_badly_signed_requests(
    slack: SlackSimulator, bolt: tuple[str, list[dict[str, Any]]], signature: SignatureMode
) -> None:
    """Bolt answers 401 to a wrong, missing or old signature and runs no listener."""
    url, heard = bolt
    request = slash_command("abc", response_url=slack.response_url())

    response = await post(url, request, signing_secret=SECRET, signature=signature)

    expected: tuple[int, list[dict[str, Any]]] = (401, [])
    assert expected == (response.status_code, heard)


async def test_bolt_over_socket_mode_acks_envelopes_built_by_the_helpers(
    slack: SlackSimulator,
) -> None:
    """Bolt's AsyncSocketModeHandler acks a command, a shortcut and a click sent as envelopes."""
    heard: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(bolt_app(slack, heard), app_token="xapp-sim")
    message = slack.post_user_message("C0GENERAL", "see clip abc")
    requests = [
        slash_command("abc", response_url=slack.response_url()),
        message_shortcut(message, callback_id="clip_status", response_url=slack.response_url()),
        block_action("refresh", "abc", message=message, response_url=slack.response_url()),
    ]
    async with connected(handler.client):
        await slack.wait_for_socket_connection()
        acks = [await send_over_socket(slack, request) for request in requests]
        await slack.wait_for(lambda sim: len(sim.ephemerals) == 3)

    expected = (
        [None, None, None],
        ["/clip", "message_action", "block_actions"],
    )
    assert expected == (
        [ack.get("payload") for ack in acks],
        [body.get("command") or body["type"] for body in heard],
    )
