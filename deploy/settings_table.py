"""`python -m deploy.settings_table [--write]`: the README's configuration table, from the settings classes.

Every setting of every service is an environment variable `LLMFLEET_<SERVICE>_<FIELD>`; the
table is generated so that it cannot drift from what the code reads (a test compares them).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deploy.local.postgres import SERVICES
from shared.settings import ServiceSettings

SECRET_FIELDS = {"database_url"}
REPO = Path(__file__).resolve().parent.parent


def settings_class(service: str) -> type[ServiceSettings]:
    """The one ServiceSettings subclass in services/<service>/settings.py."""
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
    ]
    if len(found) != 1:
        raise LookupError(f"services/{service}/settings.py should define one settings class, found {found}")
    return found[0]


def _default(name: str, value: Any) -> str:
    if name in SECRET_FIELDS:
        return "(set it)"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [item.model_dump(mode="json") for item in value]
    if hasattr(value, "value"):
        value = value.value
    text = json.dumps(value, default=str) if isinstance(value, list | dict | tuple) else str(value)
    text = text.replace(str(REPO) + "/", "")  # paths inside the checkout, shown relative to it
    return text if len(text) <= 60 else text[:57] + "..."


def rows() -> list[tuple[str, str, str]]:
    """(variable, default, what it does) for every setting of every service."""
    table = []
    for service in SERVICES:
        cls = settings_class(service)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            what = (field.description or "").replace("|", "/").replace("\n", " ")
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if "table_default" in extra:  # a default that depends on where it runs (host, process)
                shown = str(extra["table_default"])
            else:
                shown = _default(name, field.get_default(call_default_factory=True))
            table.append((f"{prefix}{name.upper()}", shown, what))
    return table


def markdown() -> str:
    """The table as Markdown."""
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    lines += [f"| `{var}` | `{default}` | {what} |" for var, default, what in rows()]
    return "\n".join(lines)


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def with_table(readme: str) -> str:
    """`readme` with the text between the settings markers replaced by the current table."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown()}\n{END}{tail}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:  # regenerate the README's table in place
        readme = REPO / "README.md"
        readme.write_text(with_table(readme.read_text()))
    else:
        print(markdown())
