"""`python -m bot`: the bot's command line."""

from bot.cli import main

raise SystemExit(main())
