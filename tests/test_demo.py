"""The local demo the README's first command runs."""

from __future__ import annotations

import io
import re

import pytest

from bot.workspaces import not_connected
from standins.demo import run_demo
from standins.demo_text import plain
from standins.demo_workspaces import run_workspaces_demo


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
    assert "Part 2: one bot, many workspaces" in printed


@pytest.mark.slow
async def test_demo_serves_two_workspaces_each_with_its_own_token_and_key():
    """Two installs, Rhombus connected in each, both clips end, calls isolated, uninstall ends."""
    out = io.StringIO()

    served = await run_workspaces_demo(speed=8.0, out=out)

    printed = out.getvalue()
    assert served, printed
    for workspace, team_id in (("Acme", "T0ACME"), ("Globex", "T0GLOBEX")):
        assert f"“Thank you!” → slack://app?team={team_id}&id=" in printed
        assert re.search(rf"Installed in {workspace}: its bot token …\w{{4}} is stored", printed)
        assert f"{workspace} #general · message 1, edited: ✅ Ready" in printed
    # Before an admin connects Rhombus, /clip says how; after, the Home names region and key.
    before_connect = printed.index("Rhombus: US, key ending")
    assert 0 < printed.find(plain(not_connected("T0ACME", "A0SIM"))) < before_connect
    assert re.search(r"Rhombus: US, key ending …\w{4}, connected by @alice", printed)
    assert re.search(r"Rhombus: EU, key ending …\w{4}, connected by @alice", printed)
    # Every call carried its own workspace's token or key, and nothing went astray.
    for workspace, region in (("Acme", "US"), ("Globex", "EU")):
        slack = re.search(
            rf"{workspace} +Slack: (\d+) calls with {workspace}'s token …\w{{4}}, "
            "all into its own channels",
            printed,
        )
        rhombus = re.search(
            rf"Rhombus: (\d+) calls to {region} with {workspace}'s key …\w{{4}}\n", printed
        )
        assert slack is not None, printed
        assert rhombus is not None, printed
        assert int(slack.group(1)) > 0
        assert int(rhombus.group(1)) > 0
    assert "carried no workspace's token or key" not in printed
    # Globex's uninstall ended its open tracking, deleted its secrets; only Acme was served on.
    assert "Globex #general · message 2: tracking ended (uninstalled)" in printed
    assert "Globex's bot token deleted, its Rhombus key deleted" in printed
    after = re.search(r"Calls after Globex's uninstall: (\d+) for Acme, (\d+) for Globex", printed)
    assert after is not None, printed
    assert int(after.group(1)) > 0
    assert 0 == int(after.group(2)), printed
