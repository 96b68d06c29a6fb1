"""`python -m bot` is the same as the `fabro-slack-bot` command."""

from bot.cli import main

raise SystemExit(main())
