"""The finished clip's video in the thread: the real bot, Rhombus's media and Slack's upload."""

from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING, Any

import pytest

from bot.delivery_rows import DeliveryRows, DeliveryState
from bot.runtime import Bot
from standins.rhombus import Fault, completes, media_bytes, thumbnail_bytes
from standins.slack_requests import message_shortcut
from tests.helpers import (
    CLIP,
    OTHER,
    clip_command,
    finished,
    send,
    status_messages,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from bot.config import Settings
    from standins.rhombus import ManualClock, RhombusSimulator
    from standins.slack import Call, Message, SlackSimulator

SIZE = 1_000_000  # 4 s of the simulator's 250 kB/s footage
MEDIA_PATH = f"/media/metadata/us-west-2/{CLIP}.mp4"


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the bot's temporary files go during the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
async def start(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., object]]:
    """Starts the bot with video delivery on (and any other settings); stops it at the end."""
    started: list[Bot] = []

    async def run(**overrides: object) -> Bot:
        settings = {"deliver_video": True, "deliver_thumbnail": True, **overrides}
        bot = await Bot.start(make_settings(**settings))
        started.append(bot)
        return bot

    yield run
    for bot in started:
        await bot.stop()


async def complete_one(
    bot: Bot,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    channel: str = "C0GENERAL",
    **fields: Any,
) -> Message:
    """Follow CLIP in `channel` until it is complete and delivered; its status message."""
    fields.setdefault("durationSec", 4)
    fields.setdefault("title", "Lobby door")
    rhombus.add_clip(CLIP, script=completes(10), **fields)
    await clip_command(bot, slack, CLIP, channel_id=channel)
    await slack.wait_for(lambda s: len(status_messages(s, channel)) == 1)
    (message,) = status_messages(slack, channel)
    clock.advance(35)
    await finished(bot, message)
    assert bot.deliveries is not None
    await bot.deliveries.idle()
    return message


def video_uploads(slack: SlackSimulator) -> list[Call]:
    """The upload URLs asked for an mp4."""
    return [
        c
        for c in slack.calls_to("files.getUploadURLExternal")
        if str(c.args.get("filename")).endswith(".mp4")
    ]


async def delivery_state(bot: Bot, message: Message) -> str | None:
    """What the deliveries table says of the message's tracking."""
    tracking = await bot.store.find_by_message(message.channel, message.ts)
    assert tracking is not None
    delivery = await DeliveryRows(bot.store).get(tracking.id)
    return None if delivery is None else delivery.state


async def test_the_video_is_the_reply_in_the_thread_byte_for_byte(
    start, slack, rhombus, clock, temp_dir
):
    """The mp4 Rhombus serves is shared once in the thread, commented with the mention."""
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock)

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    (file,) = slack.shared_files("C0GENERAL", message.ts)
    assert media_bytes(CLIP, SIZE) == file.data
    assert "Lobby door.mp4" == file.filename
    assert reply.text.startswith("<@U0ALICE> your clip “Lobby door” is ready")
    (complete,) = [
        c for c in slack.calls_to("files.completeUploadExternal") if c.args.get("channel_id")
    ]
    assert (message.channel, message.ts) == (
        complete.args["channel_id"],
        complete.args["thread_ts"],
    )
    assert 1 == len(slack.calls_to("chat.postMessage"))  # the status message alone
    assert DeliveryState.DELIVERED == await delivery_state(bot, message)
    assert [] == list(temp_dir.iterdir())


async def test_a_clip_over_the_limit_gets_the_text_reply_with_its_size(
    start, slack, rhombus, clock
):
    """Over VIDEO_MAX_MB: nothing is downloaded; the reply says how big it is and links it."""
    bot = await start(video_max_mb=0.5)

    message = await complete_one(bot, slack, rhombus, clock)

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert reply.text.endswith(
        "No video: the clip is 1 MB, more than the 0 MB I upload; open it in Rhombus."
    )
    assert [] == video_uploads(slack)
    assert 0 == rhombus.calls[MEDIA_PATH]
    assert "Open in Rhombus" in str(reply.blocks)


async def test_a_public_channel_is_joined_before_the_upload(start, slack, rhombus, clock):
    """The bot posts in #random without being in it, joins it, and shares the video there."""
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock, channel="C0RANDOM")

    assert 1 == len(slack.shared_files("C0RANDOM", message.ts))
    assert ["C0RANDOM"] == [c.args["channel"] for c in slack.calls_to("conversations.join")]


async def test_not_in_the_channel_says_how_to_invite(start, slack, rhombus, clock):
    """Without channels:join the bot stays outside: the text reply says to /invite it."""
    slack.scopes -= {"channels:join"}
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock, channel="C0RANDOM")

    (reply,) = slack.thread_replies("C0RANDOM", message.ts)
    assert "/invite @Rhombus Clips" in reply.text
    assert [] == slack.shared_files("C0RANDOM", message.ts)
    assert DeliveryState.REPLIED == await delivery_state(bot, message)


@pytest.mark.slow
async def test_a_rhombus_failure_is_retried(start, slack, rhombus, clock, temp_dir):
    """The media host fails with a 503 once: the next try delivers the video."""
    rhombus.inject(Fault("server_error", path=MEDIA_PATH, status=503))
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock)

    (file,) = slack.shared_files("C0GENERAL", message.ts)
    assert media_bytes(CLIP, SIZE) == file.data
    assert 2 == rhombus.calls[MEDIA_PATH]
    assert [] == list(temp_dir.iterdir())


async def test_a_digest_mismatch_gets_the_text_reply(start, slack, rhombus, clock, temp_dir):
    """Bytes that do not match sha256Hex are not uploaded; the reply says why."""
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock, sha256Hex="0" * 64)

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert reply.text.endswith("No video: the file Rhombus sent does not match its digest.")
    assert [] == video_uploads(slack)
    assert [] == list(temp_dir.iterdir())


async def test_a_restricted_clip_is_never_uploaded(start, slack, rhombus):
    """A clip made private while followed gets the text reply; its media is never fetched."""
    bot = await start()
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    rhombus.set_clip(
        CLIP,
        status="COMPLETE",
        percentComplete=100,
        currentOperation="Complete",
        accessSettings={"visibility": "PRIVATE", "allowedUsers": [], "allowedRoles": []},
    )
    await finished(bot, message)
    assert bot.deliveries is not None
    await bot.deliveries.idle()

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert reply.text.endswith("No video: the clip is not organisation-wide in Rhombus.")
    assert 0 == rhombus.calls[MEDIA_PATH]
    assert [] == video_uploads(slack)


async def test_turned_off_the_reply_is_text_as_before(start, slack, rhombus, clock):
    """DELIVER_VIDEO=false: the thread reply is the text reply, with no line about video."""
    bot = await start(deliver_video=False)
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(35)
    await finished(bot, message)
    assert bot.deliveries is not None  # for the thumbnail
    await bot.deliveries.idle()

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert "No video" not in reply.text
    assert [] == video_uploads(slack)
    assert 0 == rhombus.calls[MEDIA_PATH]


async def test_the_status_message_shows_the_thumbnail(start, slack, rhombus, clock):
    """The clip's jpeg is uploaded shared nowhere and shown in the message, above the buttons."""
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock)
    await slack.wait_for(lambda _: "image" in [b["type"] for b in message.blocks])

    (image,) = [b for b in message.blocks if b["type"] == "image"]
    thumbnail = slack.files[image["slack_file"]["id"]]
    assert thumbnail_bytes(CLIP) == thumbnail.data
    assert {} == thumbnail.shares
    assert "Thumbnail of Lobby door" == image["alt_text"]
    assert ["image", "actions"] == [b["type"] for b in message.blocks[-2:]]


async def test_without_thumbnails_the_message_has_no_image(start, slack, rhombus, clock):
    """DELIVER_THUMBNAIL=false: no jpeg is fetched, the status message has no image."""
    bot = await start(deliver_thumbnail=False)

    message = await complete_one(bot, slack, rhombus, clock)

    assert "image" not in [b["type"] for b in message.blocks]
    assert 0 == rhombus.calls[f"/media/metadata/us-west-2/{CLIP}.jpeg"]


async def test_odd_fields_from_rhombus_do_not_stop_the_video(start, slack, rhombus, clock):
    """A digest that is not one is ignored; a title full of paths and mentions names no path."""
    bot = await start()

    message = await complete_one(
        bot, slack, rhombus, clock, title="../../etc/passwd\n<@U0BOB> ✨", sha256Hex="nope"
    )

    (file,) = slack.shared_files("C0GENERAL", message.ts)
    assert "etc passwd U0BOB.mp4" == file.filename
    assert media_bytes(CLIP, SIZE) == file.data


async def test_a_status_message_in_a_thread_gets_the_video_in_that_thread(
    start, slack, rhombus, clock
):
    """Followed from the shortcut, the status is a reply: the video joins the same thread."""
    bot = await start()
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    source = slack.post_user_message("C0GENERAL", f"Can someone check {CLIP}?")
    request = message_shortcut(source, callback_id="track_clip", response_url=slack.response_url())
    assert 200 == (await send(bot, request)).status_code
    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", source.ts)) == 1)
    (status,) = slack.thread_replies("C0GENERAL", source.ts)
    clock.advance(35)
    await finished(bot, status)
    assert bot.deliveries is not None
    await bot.deliveries.idle()

    (file,) = slack.shared_files("C0GENERAL", source.ts)
    assert media_bytes(CLIP, SIZE) == file.data
    assert "image" in [block["type"] for block in status.blocks]


@pytest.mark.slow
async def test_stopping_mid_download_removes_the_file_and_the_next_start_delivers(
    start, slack, rhombus, clock, temp_dir
):
    """Stopped while the media host is slow: no file is left; the next start sends it once."""
    rhombus.inject(Fault("slow", path=MEDIA_PATH, delay=30.0))
    bot = await start()
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(35)
    await wait_until(lambda: rhombus.calls[MEDIA_PATH] == 1)

    await bot.stop()
    assert [] == list(temp_dir.iterdir())
    rhombus.clear_faults()
    again = await start()
    assert again.deliveries is not None
    await slack.wait_for(lambda s: len(s.shared_files("C0GENERAL", message.ts)) == 1)
    await again.deliveries.idle()

    (file,) = slack.shared_files("C0GENERAL", message.ts)
    assert media_bytes(CLIP, SIZE) == file.data
    assert 1 == len(slack.thread_replies("C0GENERAL", message.ts))
    assert [] == list(temp_dir.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 2])
async def test_deliveries_take_turns_beyond_the_concurrency(
    start, slack, rhombus, clock, concurrency
):
    """Two clips ready at once: one download at a time with DELIVERY_CONCURRENCY=1, else both."""
    bot = await start(
        delivery_concurrency=concurrency, deliver_thumbnail=False, slack_edits_per_minute=600
    )
    clips = (CLIP, OTHER)
    asked: dict[str, float] = {}
    rhombus.on_request = lambda e: (
        e.path.endswith(".mp4") and asked.setdefault(e.path, time.monotonic())
    )
    for clip in clips:
        path = f"/media/metadata/us-west-2/{clip}.mp4"
        rhombus.inject(Fault("slow", path=path, delay=1.0))
        rhombus.add_clip(clip, script=completes(10), durationSec=4)
        await clip_command(bot, slack, clip)
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    clock.advance(35)
    await slack.wait_for(lambda s: sum(bool(f.shares) for f in s.files.values()) == 2, 15)

    first, second = sorted(asked.values())
    assert (concurrency == 1) == (second - first >= 1.0), asked


async def test_a_workspace_without_uploads_gets_the_text_reply(start, slack, rhombus, clock):
    """Uploads disabled by the workspace: the text reply says so, with Slack's code."""
    slack.fail("files.getUploadURLExternal", error="file_uploads_disabled", times=-1)
    bot = await start()

    message = await complete_one(bot, slack, rhombus, clock)

    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert reply.text.endswith(
        "No video: this workspace does not let me upload it (file_uploads_disabled)."
    )
    assert [] == slack.shared_files("C0GENERAL", message.ts)
