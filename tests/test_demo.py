"""The local demo the README's first command runs."""

from __future__ import annotations

import io

import pytest

from standins.demo import run_demo


@pytest.mark.slow
async def test_demo_runs_every_clip_to_its_end():
    """The demo follows every demo clip to its end and prints each outcome."""
    out = io.StringIO()

    status = await run_demo(speed=8.0, out=out)

    printed = out.getvalue()
    assert 0 == status, printed
    assert "Done: every clip reached its end." in printed
    assert "✅ Ready" in printed
    assert "❌ Failed" in printed
    assert "deleted in Rhombus" in printed
    assert "is private in Rhombus, so I won't post it in the channel" in printed
    assert 4 <= printed.count("thread reply")
    assert "@alice in #general: /clip list" in printed
    assert "being followed in this channel:" in printed
    assert "📎 video Lobby package delivery.mp4 (22.5 MB)" in printed
    assert "🖼  Thumbnail of Lobby: package delivery" in printed
    assert '/clip new "Loading Dock" -5m 1m Forklift at the dock' in printed
    assert "Made from Slack by @alice · Loading Dock" in printed
    assert "📷 Lobby · Headquarters" in printed
    assert "@alice presses [Follow a clip of this] on the unfurl" in printed
    assert "Made from Slack by @alice · Lobby" in printed
