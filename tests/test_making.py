"""`/clip new`: signed commands, modals and clicks into the real bot, against the stand-ins."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from bot.making_views import (
    CAMERA_ACTION,
    CAMERA_BLOCK,
    DATE_ACTION,
    DATE_BLOCK,
    DURATION_ACTION,
    DURATION_BLOCK,
    TIME_ACTION,
    TIME_BLOCK,
    TITLE_ACTION,
    TITLE_BLOCK,
)
from bot.runtime import Bot
from bot.status_message import ACTION_CANCEL, ACTION_RETRY
from bot.store import TrackingState
from standins.rhombus import (
    CAMERA_STATES_PATH,
    LOADING_DOCK_CAMERA,
    LOBBY_CAMERA,
    RENDER_FAILED,
    Fault,
    Step,
    completes,
    fails,
    stays,
)
from standins.slack_requests import (
    Origin,
    block_action,
    block_suggestion,
    send_over_socket,
    slash_command,
    view_submission,
)
from tests.contract.openapi import validate_exchange
from tests.helpers import (
    clip_command,
    finished,
    send,
    shown_text,
    status_messages,
    stored,
    wait_until,
)

SPLICE = "/api/video/spliceV3"


async def make(bot, slack, text, **origin):
    """Type `/clip new text` in #general."""
    return await clip_command(bot, slack, f"new {text}".strip(), **origin)


def local(zone: str, moment: datetime) -> datetime:
    """The moment's wall-clock time in a zone."""
    return moment.astimezone(ZoneInfo(zone))


def most_recent(zone: str, hour: int, minute: int) -> datetime:
    """Independently: the last moment not in the future with that local time."""
    now = datetime.now(UTC)
    candidate = local(zone, now).replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate > now:
        candidate -= timedelta(days=1)
    return candidate.astimezone(UTC)


async def test_a_clip_is_made_and_followed_like_any_other(bot, slack, rhombus, clock):
    """`/clip new` splices with the camera's facets and follows the clip in one message."""
    before = time.time()
    await make(bot, slack, "lobby -10m 2m Door left open")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)

    (body,) = rhombus.splicing.requests
    assert [f"{LOBBY_CAMERA}.v0", f"{LOBBY_CAMERA}.a0"] == body["deviceUuids"]
    assert 120 == body["durationSec"]
    assert "Door left open" == body["title"]
    assert (True, {"visibility": "ORG_WIDE"}) == (body["saveToConsole"], body["accessSettings"])
    assert abs(body["startTimeMillis"] / 1000 - (before - 600)) < 5
    (message,) = status_messages(slack)
    assert "Made from Slack by <@U0ALICE> · Lobby" in shown_text(message)
    assert "clip_cancel" in shown_text(message)
    clock.advance(30)
    await finished(bot, message)
    assert "Ready" in message.text
    assert 1 == len(slack.thread_replies("C0GENERAL", message.ts))
    assert [] == slack.ephemerals
    for exchange in rhombus.exchanges:  # every call the bot made, as Rhombus's spec has it
        validate_exchange(exchange)


@pytest.mark.parametrize(
    "case",
    [
        ("-1h30m", "UTC", lambda: datetime.now(UTC) - timedelta(minutes=90)),
        ("15m ago", "UTC", lambda: datetime.now(UTC) - timedelta(minutes=15)),
        # UTC+14: a clock time just after midnight is the person's, not the server's.
        ("00:01", "Pacific/Kiritimati", lambda: most_recent("Pacific/Kiritimati", 0, 1)),
        ("23:59", "Pacific/Pago_Pago", lambda: most_recent("Pacific/Pago_Pago", 23, 59)),
        (
            (datetime.now(ZoneInfo("Asia/Kathmandu")) - timedelta(days=1)).strftime(
                "%Y-%m-%d 07:45"
            ),
            "Asia/Kathmandu",
            lambda: (
                (datetime.now(ZoneInfo("Asia/Kathmandu")) - timedelta(days=1))
                .replace(hour=7, minute=45, second=0, microsecond=0)
                .astimezone(UTC)
            ),
        ),
        ("2025-01-02T03:04:05Z", "UTC", lambda: datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05+05:30", "UTC", lambda: datetime(2025, 1, 1, 21, 34, 5, tzinfo=UTC)),
    ],
)
async def test_each_start_form(bot, slack, rhombus, case):
    """Every start form reaches spliceV3 as the moment it names, in the person's time zone."""
    start, zone, expected = case
    slack.views.people["U0ALICE"].tz = zone
    await make(bot, slack, f'"Loading Dock" {start} 1m')
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)

    (body,) = rhombus.splicing.requests
    assert [f"{LOADING_DOCK_CAMERA}.v0", f"{LOADING_DOCK_CAMERA}.a0"] == body["deviceUuids"]
    assert abs(body["startTimeMillis"] / 1000 - expected().timestamp()) < 5


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Nowhere -10m 1m", "No camera is called `Nowhere`."),
        ("Lobbby -10m 1m", "Closest names: `Lobby`"),
        ("lo -10m 1m", "Lobby · Headquarters — `LobbyCamera0000000000A`"),
        ('"Loading Dock -10m 1m', "no closing quote"),
        ("Lobby", "Say when the clip starts"),
        ("Lobby soon 1m", "The start `soon` is not one I can read"),
        ("Lobby 25:99 1m", "is not a time of day"),
        ("Lobby -10m", "Say how long the clip lasts"),
        ("Lobby -10m forever", "The duration `forever` is not one I can read"),
        ("Lobby -10m 0s", "at least 1 second"),
        ("Lobby -3h 2h", "at most 1 h"),
        ("Lobby -1m 2m", "The whole clip must be in the past"),
    ],
)
async def test_each_refusal_names_the_wrong_part(bot, slack, rhombus, text, said):
    """A wrong camera, start or duration is refused ephemerally with an example; nothing made."""
    await make(bot, slack, text)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    (answer,) = slack.ephemerals
    assert said in answer.text
    assert "ephemeral" == answer.response_type
    assert "/clip new" in answer.text
    assert ([], []) == (rhombus.splicing.requests, status_messages(slack))


async def test_help_for_clip_new(bot, slack, rhombus):
    """`/clip new help` shows how to use it, and `/clip help` mentions it."""
    await make(bot, slack, "help")
    await clip_command(bot, slack, "help")

    await slack.wait_for(lambda s: len(s.ephemerals) == 2)
    assert all("/clip new &lt;camera&gt; &lt;start&gt;" in e.text for e in slack.ephemerals)
    assert [] == rhombus.splicing.requests


async def test_a_range_without_footage_is_refused(bot, slack, rhombus):
    """No recorded footage at all: refused, saying so; a partial gap goes on and is shown."""
    rhombus.splicing.presence[LOBBY_CAMERA] = []
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "recorded nothing" in slack.ephemerals[0].text
    assert [] == rhombus.splicing.requests

    start = int(time.time()) - 600
    rhombus.splicing.presence[LOBBY_CAMERA] = [(start + 30, 3600)]
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    assert "No recorded footage" in shown_text(status_messages(slack)[0])


async def test_rhombus_refusing_the_splice_is_passed_on(bot, slack, rhombus):
    """`error: true` from spliceV3: the person reads Rhombus's errorMsg; nothing is posted."""
    rhombus.splicing.error_msg = "Camera storage is full"
    await make(bot, slack, "Lobby -10m 1m")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "Rhombus refused to make the clip: Camera storage is full" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_an_offline_camera_is_a_warning(bot, slack, rhombus):
    """A disconnected camera still gets its clip, with a warning to the person."""
    rhombus.set_camera(LOBBY_CAMERA, connectionStatus="RED")
    await make(bot, slack, "Lobby -10m 1m")

    await slack.wait_for(lambda s: len(status_messages(s)) == 1 and len(s.ephemerals) == 1)
    assert "is offline right now" in slack.ephemerals[0].text


async def test_archived_cameras_are_not_offered(bot, slack, rhombus):
    """A mummified camera is not found by name."""
    rhombus.set_camera(LOBBY_CAMERA, mummified=True)
    await make(bot, slack, "Lobby -10m 1m")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "No camera is called `Lobby`" in slack.ephemerals[0].text


async def test_only_clip_creators_may_make_clips(make_settings, slack, rhombus):
    """With CLIP_CREATORS set, anyone else is refused, and may still follow clips."""
    running = await Bot.start(make_settings(clip_creators="U0BOB"))
    try:
        await make(running, slack, "Lobby -10m 1m")
        await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    finally:
        await running.stop()
    assert "not on the list of people who can make" in slack.ephemerals[0].text
    assert [] == rhombus.splicing.requests


async def test_a_clip_rhombus_does_not_know_yet_is_starting(bot, slack, rhombus, clock):
    """Refusals in the first seconds after the splice are not taken for a missing clip."""
    rhombus.splicing.unknown_for = 2.0
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    polls = rhombus.calls["/api/event/getClipWithProgress"]
    await wait_until(lambda: rhombus.calls["/api/event/getClipWithProgress"] >= polls + 4)
    assert "Initiating" in message.text

    clock.advance(3)  # Rhombus knows the clip from now on, and starts making it
    await wait_until(lambda: 1 == len(rhombus.clip_uuids))
    clock.advance(30)
    await finished(bot, message)
    assert "Ready" in message.text


async def test_cancel_ends_the_clip_and_says_who(bot, slack, rhombus):
    """Cancel calls cancelSpliceV2; the message ends "Cancelled by" whoever pressed it."""
    rhombus.splicing.script = stays("UPLOADING", "Uploading video", 30)
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)

    click = block_action(ACTION_CANCEL, "x", message=message, response_url=slack.response_url())
    assert 200 == (await send(bot, click)).status_code

    tracking = await finished(bot, message)
    await slack.wait_for(lambda _: "Cancelled" in message.text)
    assert [tracking.clip_id] == rhombus.splicing.cancelled
    assert "Cancelled by <@U0ALICE>" in shown_text(message)
    assert "clip_cancel" not in shown_text(message)


async def test_retry_follows_the_failed_clip_again_in_the_same_message(bot, slack, rhombus, clock):
    """On FAILED the message offers Retry; retrySplice, then the same message reaches Ready."""
    rhombus.splicing.script = fails(1)
    # Rhombus still says FAILED for a moment after retrySplice, then makes the clip.
    rhombus.splicing.retry_script = (
        Step(0, "FAILED", RENDER_FAILED, 60),
        *(step._replace(after_seconds=step.after_seconds + 2) for step in completes(3)),
    )
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(10)
    await finished(bot, message)
    await slack.wait_for(lambda _: ACTION_RETRY in shown_text(message))

    click = block_action(ACTION_RETRY, "x", message=message, response_url=slack.response_url())
    assert 200 == (await send(bot, click)).status_code
    await stored(bot, message, TrackingState.FOLLOWING)
    polls = rhombus.calls["/api/event/getClipWithProgress"]
    await wait_until(lambda: rhombus.calls["/api/event/getClipWithProgress"] >= polls + 3)
    assert TrackingState.FOLLOWING == (await stored(bot, message)).state
    clock.advance(30)
    await slack.wait_for(lambda _: "Ready" in message.text)

    assert 1 == len(rhombus.splicing.retried)
    assert 1 == len(status_messages(slack))
    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 2)
    failed, ready = slack.thread_replies("C0GENERAL", message.ts)
    assert ("failed", "is ready") == (
        "failed" if "failed" in failed.text else failed.text,
        "is ready" if "is ready" in ready.text else ready.text,
    )


# --- The modal ----------------------------------------------------------------------------------


async def open_modal(bot, slack) -> dict[str, Any]:
    """`/clip new` alone, with a trigger the stand-in issued; the view it opened."""
    request = slash_command(
        "new", response_url=slack.response_url(), trigger_id=slack.views.trigger()
    )
    assert 200 == (await send(bot, request)).status_code
    await slack.wait_for(lambda s: len(s.views.opened) == 1)
    view: dict[str, Any] = slack.views.opened[0]
    return view


def values(camera: str | None, day: str, clock_time: str, duration: str) -> dict[str, Any]:
    """The modal's state.values as Slack sends them."""
    picked = {"selected_option": {"value": camera, "text": {"type": "plain_text", "text": "x"}}}
    return {
        CAMERA_BLOCK: {CAMERA_ACTION: {"type": "external_select", **(picked if camera else {})}},
        DATE_BLOCK: {DATE_ACTION: {"type": "datepicker", "selected_date": day}},
        TIME_BLOCK: {TIME_ACTION: {"type": "timepicker", "selected_time": clock_time}},
        DURATION_BLOCK: {DURATION_ACTION: {"type": "plain_text_input", "value": duration}},
        TITLE_BLOCK: {TITLE_ACTION: {"type": "plain_text_input", "value": None}},
    }


async def test_the_modal_opens_suggests_cameras_and_makes_the_clip(bot, slack, rhombus):
    """The form's camera type-ahead lists "Camera · Location"; a valid submission closes it."""
    view = await open_modal(bot, slack)
    assert "clip_new_modal" == view["callback_id"]

    suggestion = block_suggestion(CAMERA_ACTION, "dock", view=view, block_id=CAMERA_BLOCK)
    options = (await send(bot, suggestion)).json()["options"]
    assert ["Loading Dock · Headquarters"] == [option["text"]["text"] for option in options]

    zone = ZoneInfo("America/Los_Angeles")
    start = datetime.now(zone) - timedelta(hours=2)
    submitted = values(LOBBY_CAMERA, f"{start:%Y-%m-%d}", f"{start:%H:%M}", "90s")
    response = await send(bot, view_submission(view, submitted))
    assert (200, "") == (response.status_code, response.text)

    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (body,) = rhombus.splicing.requests
    expected = start.replace(second=0, microsecond=0).astimezone(UTC)
    assert (int(expected.timestamp() * 1000), 90) == (body["startTimeMillis"], body["durationSec"])
    assert [f"{LOBBY_CAMERA}.v0"] == body["deviceUuids"]  # audio left unticked


async def test_the_modal_answers_bad_fields_under_each_field(bot, slack, rhombus):
    """No camera, a future time and a bad duration come back as `response_action: errors`."""
    view = await open_modal(bot, slack)
    tomorrow = datetime.now(ZoneInfo("America/Los_Angeles")) + timedelta(days=1)

    response = await send(
        bot, view_submission(view, values(None, f"{tomorrow:%Y-%m-%d}", "10:00", "1m"))
    )
    answer = response.json()
    assert "errors" == answer["response_action"]
    assert {CAMERA_BLOCK, TIME_BLOCK} == set(answer["errors"])

    response = await send(
        bot, view_submission(view, values(LOBBY_CAMERA, "2025-01-01", "10:00", "2 hours"))
    )
    assert {DURATION_BLOCK} == set(response.json()["errors"])
    assert ([], []) == (rhombus.splicing.requests, status_messages(slack))
    assert json.loads(view["private_metadata"])["c"] == "C0GENERAL"


# --- Hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("<!channel> -10m 1m", "No camera is called `&lt;!channel&gt;`"),
        ('"" -10m 1m', "no closing quote"),
        ("Lobby 0001-01-01T00:00:00+01:00 1m", "is not one I can read"),
        ("Lobby 1999-12-31T23:00:00Z 1m", "before Rhombus kept any footage"),
        ("Lobby 9999-12-31T23:59:59-14:00 1m", "is not one I can read"),
        ("Lobby -10m 99999999999999999", "at most 1 h"),
        ("Lobby -99999999h 1m", "is not one I can read"),
        ("Lobby \u202e-10m 1m", "is not one I can read"),
    ],
)
async def test_hostile_commands_are_refused_plainly(bot, slack, rhombus, text, said):
    """Entities, overflowing dates and absurd numbers get a plain refusal; nothing is made."""
    await make(bot, slack, text)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert said in slack.ephemerals[0].text
    assert "<!channel>" not in slack.ephemerals[0].text
    assert ([], []) == (rhombus.splicing.requests, status_messages(slack))


async def test_without_users_read_times_of_day_are_utc(bot, slack, rhombus):
    """When Slack will not tell the person's time zone, a time of day is read as UTC."""
    slack.scopes = slack.scopes - {"users:read"}
    await make(bot, slack, "Lobby 00:00 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)

    (body,) = rhombus.splicing.requests
    assert 0 == body["startTimeMillis"] // 1000 % 86400


@pytest.mark.parametrize(
    "garbage",
    [
        {"private_metadata": "not ours"},
        {"private_metadata": '{"c": "C0GENERAL"}', "state": []},
        {"private_metadata": '{"c": "C0GENERAL"}', "state": {"values": "x"}},
    ],
)
async def test_garbage_submissions_do_not_crash(bot, rhombus, garbage):
    """A submission that is not the bot's, or has odd values, closes or gets field errors."""
    view = {"type": "modal", "callback_id": "clip_new_modal", **garbage}
    request = view_submission(view, {})
    if "state" in garbage:
        payload = {
            **request.payload,
            "view": {**request.payload["view"], "state": garbage["state"]},
        }
        request = dataclasses.replace(
            request, payload=payload, body=urlencode({"payload": json.dumps(payload)})
        )
    response = await send(bot, request)

    assert 200 == response.status_code
    assert response.text == "" or "errors" == response.json()["response_action"]
    assert [] == rhombus.splicing.requests


async def test_only_creators_may_cancel(make_settings, slack, rhombus):
    """Someone not on CLIP_CREATORS who clicks Cancel is refused; the clip goes on."""
    rhombus.splicing.script = stays("UPLOADING", "Uploading video", 30)
    running = await Bot.start(make_settings(clip_creators="U0ALICE"))
    try:
        await make(running, slack, "Lobby -10m 1m")
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        (message,) = status_messages(slack)
        await stored(running, message, TrackingState.FOLLOWING)
        click = block_action(
            ACTION_CANCEL,
            "x",
            message=message,
            response_url=slack.response_url(),
            origin=Origin(user_id="U0BOB", user_name="bob"),
        )
        await send(running, click)
        await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    finally:
        await running.stop()
    assert "not on the list of people who can make" in slack.ephemerals[0].text
    assert [] == rhombus.splicing.cancelled


async def test_a_private_clip_is_made_but_not_posted(make_settings, slack, rhombus):
    """With CLIP_VISIBILITY=PRIVATE the clip is made private and only its maker is told."""
    running = await Bot.start(make_settings(clip_visibility="PRIVATE"))
    try:
        await make(running, slack, "Lobby -10m 1m")
        await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    finally:
        await running.stop()
    (body,) = rhombus.splicing.requests
    assert {"visibility": "PRIVATE"} == body["accessSettings"]
    assert "is private in Rhombus, so I won't post it" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault("rate_limit", path=SPLICE, retry_after=7), "Rhombus is busy; try again in 7 s."),
        (Fault("server_error", path=SPLICE, status=503), "may or may not have been made"),
    ],
)
async def test_a_splice_rhombus_does_not_answer_is_explained(bot, slack, rhombus, fault, said):
    """A 429 means nothing was made; a 503 may have made it, so the person is warned."""
    rhombus.inject(fault)
    await make(bot, slack, "Lobby -10m 1m")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert said in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_a_stale_trigger_tells_the_person_to_type_the_clip(bot, slack):
    """views.open refusing the trigger (expired, unknown) is answered with the text form."""
    await make(bot, slack, "")  # a trigger the stand-in never issued

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "couldn't open the form; type the clip instead" in slack.ephemerals[0].text
    assert ["invalid_trigger_id"] == [c.error for c in slack.calls_to("views.open")]


async def test_the_modal_over_socket_mode(make_settings, slack):
    """Over Socket Mode the type-ahead and the field errors come back in the acknowledgement."""
    running = await Bot.start(make_settings(slack_app_token="xapp-test-app-token-0123456789"))
    try:
        await slack.wait_for_socket_connection()
        command = slash_command(
            "new", response_url=slack.response_url(), trigger_id=slack.views.trigger()
        )
        await send_over_socket(slack, command)
        await slack.wait_for(lambda s: len(s.views.opened) == 1)
        view = slack.views.opened[0]
        suggested = await send_over_socket(
            slack, block_suggestion(CAMERA_ACTION, "lob", view=view, block_id=CAMERA_BLOCK)
        )
        refused = await send_over_socket(
            slack, view_submission(view, values(None, "2025-01-01", "10:00", "1m"))
        )
    finally:
        await running.stop()
    assert ["Lobby · Headquarters"] == [o["text"]["text"] for o in suggested["payload"]["options"]]
    assert {CAMERA_BLOCK: "Pick a camera from the list."} == refused["payload"]["errors"]


@pytest.mark.parametrize(
    "case",
    [
        (120, "Lobby -10m 3m", "at most 2 min in this organisation"),
        (None, "Lobby -3h 61m", "at most 1 h in this organisation"),
    ],
)
async def test_the_longest_clip_is_the_organisations(bot, slack, rhombus, case):
    """The organisation's longest clip bounds the duration; 1 h when Rhombus gives no number."""
    said_max, text, refusal = case
    rhombus.splicing.max_duration = said_max
    await make(bot, slack, text)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert refusal in slack.ephemerals[0].text


async def test_the_default_title_is_the_camera_and_local_start(bot, slack, rhombus):
    """Without a title the clip is named after its camera and start, in the person's zone."""
    slack.views.people["U0ALICE"].tz = "Asia/Tokyo"
    await make(bot, slack, "lobby 2026-01-02 03:04:05 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)

    (body,) = rhombus.splicing.requests
    assert "Lobby 2026-01-02 03:04:05" == body["title"]
    assert datetime(2026, 1, 1, 18, 4, 5, tzinfo=UTC).timestamp() * 1000 == body["startTimeMillis"]


async def test_a_made_clip_without_stated_visibility_is_posted(bot, slack, rhombus):
    """A new clip whose visibility Rhombus does not state yet has the one the bot asked for."""
    rhombus.splicing.states_visibility = False
    await make(bot, slack, "Lobby -10m 1m")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)

    assert "accessSettings" not in rhombus.clip_json(rhombus.clip_uuids[-1])
    assert [] == slack.ephemerals


async def test_rhombus_down_before_the_splice_is_explained(bot, slack, rhombus):
    """The camera list unavailable: the person is told to try again; nothing is made."""
    rhombus.inject(Fault("server_error", path=CAMERA_STATES_PATH, status=503, times=-1))
    await make(bot, slack, "Lobby -10m 1m")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "Rhombus is unreachable right now; try again in a minute." == slack.ephemerals[0].text
    assert [] == rhombus.splicing.requests
