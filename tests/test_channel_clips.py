"""`/clip list` and `/clip stop` through the real endpoint, with the stand-ins on 127.0.0.1."""

from __future__ import annotations

import json

from bot.app import usage
from bot.store import TrackingState
from standins.rhombus import stays
from tests.helpers import (
    CLIP,
    OTHER,
    clip_command,
    finished,
    shown_text,
    status_messages,
    stored,
)

THIRD = "GateClip_0123456789abc"


async def follow(bot, slack, rhombus, *clip_ids, channel="C0GENERAL", user="U0ALICE"):
    """Follow clips in a channel and wait until each status message is stored as following."""
    for clip_id in clip_ids:
        if clip_id not in rhombus.clip_uuids:
            rhombus.add_clip(
                clip_id,
                title=f"Title of {clip_id[:4]}",
                script=stays("UPLOADING", "Uploading video", 40),
            )
    before = len(status_messages(slack, channel))
    await clip_command(bot, slack, " ".join(clip_ids), channel_id=channel, user_id=user)
    await slack.wait_for(lambda s: len(status_messages(s, channel)) == before + len(clip_ids))
    for message in status_messages(slack, channel):
        await stored(bot, message, TrackingState.FOLLOWING)


async def answer(slack, count):
    """The `count`-th ephemeral answer, once it arrived."""
    await slack.wait_for(lambda s: len(s.ephemerals) >= count)
    return slack.ephemerals[count - 1].text


async def test_list_with_nothing_followed_says_how_to_start(bot, slack):
    """An empty channel gets a clear answer and the way to start."""
    await clip_command(bot, slack, "list")

    text = await answer(slack, 1)
    assert text.startswith("No clip is being followed in this channel.")
    assert "`/clip &lt;clip id or link&gt;`" in text
    assert "ephemeral" == slack.ephemerals[0].response_type


async def test_list_with_one_clip_links_to_its_message(bot, slack, rhombus):
    """One clip: its title linked to its status message, its state, and who asked."""
    await follow(bot, slack, rhombus, CLIP)
    (message,) = status_messages(slack)

    await clip_command(bot, slack, "list")

    text = await answer(slack, 1)
    permalink = f"https://sim.slack.com/archives/C0GENERAL/p{message.ts.replace('.', '')}"
    expected = (
        "*1 clip is being followed in this channel:*\n"
        f"• <{permalink}|Title of Lobb> · ⬆️ Uploading 40% · asked by <@U0ALICE>\n"
        "Stop one with `/clip stop &lt;clip id or link&gt;`, or all with `/clip stop all`."
    )
    assert expected == text


async def test_list_with_many_clips_counts_those_followed_elsewhere(bot, slack, rhombus):
    """Every clip of the channel is listed; clips the person follows elsewhere are counted."""
    await follow(bot, slack, rhombus, CLIP, OTHER)
    await follow(bot, slack, rhombus, THIRD, channel="C0RANDOM")

    await clip_command(bot, slack, "list")

    text = await answer(slack, 1)
    assert text.startswith("*2 clips are being followed in this channel:*")
    assert "Title of Lobb" in text
    assert "Title of Dock" in text
    assert "Title of Gate" not in text
    assert text.endswith("You follow 1 clip in other channels: see the bot's Home tab.")


async def test_stop_by_id_stops_like_the_button(bot, slack, rhombus):
    """`/clip stop <id>` ends following; the message says who stopped it; the answer names it."""
    await follow(bot, slack, rhombus, CLIP, OTHER)
    first, second = status_messages(slack)

    await clip_command(bot, slack, f"stop {CLIP}", user_id="U0BOB")

    text = await answer(slack, 1)
    assert f"• Stopped following *Title of Lobb* (`{CLIP}`)." == text
    await slack.wait_for(lambda _: "<@U0BOB>" in shown_text(first))
    tracking = await finished(bot, first)
    assert "U0BOB" == tracking.stopped_by
    assert not bot.tracker.is_following(tracking.id)
    assert '"clip_stop"' not in json.dumps(first.blocks)
    assert bot.tracker.is_following((await stored(bot, second)).id)


async def test_stop_by_link(bot, slack, rhombus):
    """A link containing the clip id stops it too."""
    await follow(bot, slack, rhombus, CLIP)
    (message,) = status_messages(slack)

    await clip_command(bot, slack, f"stop <https://console.rhombussystems.com/clips/{CLIP}>")

    text = await answer(slack, 1)
    assert f"Stopped following *Title of Lobb* (`{CLIP}`)" in text
    await finished(bot, message)


async def test_stop_all_stops_every_clip_of_the_channel_only(bot, slack, rhombus):
    """`/clip stop all` stops this channel's clips and leaves other channels alone."""
    await follow(bot, slack, rhombus, CLIP, OTHER)
    await follow(bot, slack, rhombus, THIRD, channel="C0RANDOM")

    await clip_command(bot, slack, "stop all")

    text = await answer(slack, 1)
    assert 2 == text.count("Stopped following")
    for message in status_messages(slack):
        await finished(bot, message)
    (elsewhere,) = status_messages(slack, "C0RANDOM")
    assert TrackingState.FOLLOWING == (await stored(bot, elsewhere)).state


async def test_stop_of_a_clip_not_followed_here_says_so(bot, slack, rhombus):
    """A clip followed only in another channel, or not at all, is named as not followed here."""
    await follow(bot, slack, rhombus, CLIP, channel="C0RANDOM")

    answers: list[str] = []
    for text in (f"stop {CLIP}", "stop all", "stop", "stop nonsense"):
        await clip_command(bot, slack, text)
        answers.append(await answer(slack, len(answers) + 1))

    assert f"• Clip `{CLIP}` is not being followed in this channel." == answers[0]
    assert "No clip is being followed in this channel." == answers[1]
    assert answers[2].startswith("Say which clip to stop following here")
    assert answers[3].startswith("• `nonsense` is not a clip id")
    (message,) = status_messages(slack, "C0RANDOM")
    assert TrackingState.FOLLOWING == (await stored(bot, message)).state


async def test_help_lists_every_form(bot, slack):
    """`/clip help` names following, list, stop, stop all and help, with examples."""
    await clip_command(bot, slack, "help")

    text = await answer(slack, 1)
    assert usage(5) == text
    for form in ("`/clip list`", "`/clip stop &lt;clip id or link&gt;`", "`/clip stop all`"):
        assert form in text
