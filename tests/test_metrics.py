"""/metrics, scraped over HTTP after the bot worked against the stand-ins: what it says it did."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from standins.rhombus import Fault, completes, stays
from tests.helpers import CLIP, OTHER, clip_command, status_messages

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.runtime import Bot
    from standins.rhombus import ManualClock, RhombusSimulator
    from standins.slack import SlackSimulator

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHANNEL = "C0GENERAL"


async def scrape(bot: Bot) -> Samples:
    """GET /metrics as Prometheus does; every sample by name and labels."""
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"http://127.0.0.1:{bot.port}/metrics")
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the scrape does not have it (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """Every sample of a labelled metric, by that label's value."""
    return {
        dict(labels)[label]: found for (sample, labels), found in samples.items() if sample == name
    }


async def scrape_until(bot: Bot, condition: Callable[[Samples], bool]) -> Samples:
    """Scrape until the scrape meets the condition (5 s at most); that scrape."""
    deadline = time.monotonic() + 5.0
    while not condition(samples := await scrape(bot)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no scrape met the condition; the last: {samples}")
        await asyncio.sleep(0.05)
    return samples


@pytest.mark.slow
async def test_a_scrape_counts_the_polls_and_calls_the_bot_made(
    bot: Bot, slack: SlackSimulator, rhombus: RhombusSimulator, clock: ManualClock
) -> None:
    """Two clips followed to the end through 429s: the counts are what Slack and Rhombus saw."""
    rhombus.add_clip(CLIP, script=completes(10))
    rhombus.add_clip(OTHER, script=completes(10))
    await clip_command(bot, slack, f"{CLIP} {OTHER}")
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    following = await scrape_until(
        bot,
        lambda m: (
            (value(m, "clipbot_trackings_live"), value(m, "clipbot_polls_total") > 0) == (2, True)
        ),
    )
    slack.fail("chat.update", retry_after=1)
    rhombus.inject(Fault("rate_limit", retry_after=1))

    clock.advance(35)  # both complete
    messages = status_messages(slack)
    await slack.wait_for(
        lambda s: all(len(s.thread_replies(CHANNEL, m.ts)) == 1 for m in messages), 15
    )
    done = await scrape_until(bot, lambda m: value(m, "clipbot_trackings_live") == 0)

    assert 0 < value(following, "clipbot_polls_total") < value(done, "clipbot_polls_total")
    assert value(done, "clipbot_polls_total") == value(done, "clipbot_poll_lateness_seconds_count")
    assert dict(rhombus.calls) == by_label(done, "clipbot_rhombus_calls_total", "path")
    assert 1 == sum(1 for e in rhombus.exchanges if e.status == 429)
    assert 1 == sum(by_label(done, "clipbot_rhombus_rate_limited_total", "path").values())
    sent = Counter(c.method for c in slack.calls if c.method.startswith("chat."))
    assert sent == by_label(done, "clipbot_slack_calls_total", "method")
    assert 1 == sum(1 for c in slack.calls if c.status == 429)
    assert {"chat.update": 1} == by_label(done, "clipbot_slack_rate_limited_total", "method")


@pytest.mark.slow
async def test_edits_a_rate_limited_workspace_holds_back_are_scraped_per_workspace(
    bot: Bot, slack: SlackSimulator, rhombus: RhombusSimulator
) -> None:
    """While Slack's Retry-After holds a workspace's edits, the scrape shows them waiting."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.add_clip(OTHER, script=stays("UPLOADING", "Uploading video", 10))
    await clip_command(bot, slack, f"{CLIP} {OTHER}")
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    slack.fail("chat.update", retry_after=3)

    rhombus.set_clip(CLIP, percentComplete=60)
    rhombus.set_clip(OTHER, percentComplete=60)
    held = await scrape_until(
        bot, lambda m: value(m, "clipbot_slack_edits_waiting", team="T0SIM") >= 1
    )
    await slack.wait_for(lambda s: all("60%" in m.text for m in status_messages(s)), 10)
    after = await scrape_until(
        bot, lambda m: value(m, "clipbot_slack_edits_waiting", team="T0SIM") == 0
    )

    assert {"T0SIM"} == set(by_label(held, "clipbot_slack_edits_waiting", "team"))
    assert 1 == value(after, "clipbot_slack_rate_limited_total", method="chat.update")
