"""Rhombus clip bot: follow Rhombus saved clips in Slack with a live status message."""
