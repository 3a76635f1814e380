"""Tests of the Rhombus clip bot, mirroring the package."""
