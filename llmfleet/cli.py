"""`llmfleet`: run the platform locally, see its state, replay traces, run the demo, simulate, manage keys.

This module is the typer root; each group of commands lives in its own module and registers itself.
"""

from __future__ import annotations

import logging

import typer

from llmfleet.commands import chaos, runs, stack
from llmfleet.cost import register as register_cost
from llmfleet.keys import register as register_keys
from llmfleet.simulate.command import simulate as simulate_command

app = typer.Typer(no_args_is_help=True, help="llmfleet: control plane for LLM serving fleets (local platform).")

# aiokafka logs a warning per partition while a just-created topic elects its leader; it retries.
logging.getLogger("aiokafka").setLevel(logging.ERROR)

stack.register(app)  # install, up, down, status
runs.register(app)  # demo, replay
app.command("simulate")(simulate_command)
register_keys(app)  # keys, tenants
chaos.register(app)  # chaos spot-reclaim
register_cost(app)  # cost recommendations, cost apply

if __name__ == "__main__":
    app()
