"""Faithful local stand-ins for Slack and Rhombus over real HTTP, and the demo: not the product."""
