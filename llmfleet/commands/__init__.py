"""The `llmfleet` commands by group; `llmfleet/cli.py` registers them on one typer app."""
