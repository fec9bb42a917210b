"""llmfleet-client installs without the service stack: what its modules import, and its version ranges."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "clients" / "python" / "pyproject.toml"
# What the distribution depends on (by import name), besides the standard library and its own modules.
ALLOWED = {"aiokafka", "pydantic", "opentelemetry", "typing_extensions", "shared", "llmfleet"}


def imported(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def shipped() -> list[Path]:
    """The repository files the wheel ships (its force-include table)."""
    table = tomllib.loads(DIST.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    files: list[Path] = []
    for source in table:
        path = (DIST.parent / source).resolve()
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files


def test_the_shipped_modules_import_nothing_of_the_service_stack() -> None:
    files = shipped()
    assert ROOT / "llmfleet" / "client.py" in files and ROOT / "shared" / "events" / "usage.py" in files
    for path in files:
        outside = imported(path) - ALLOWED - set(sys.stdlib_module_names) - {"__future__"}
        assert not outside, (path.name, outside)
    imports = {
        node.module
        for node in ast.walk(ast.parse((ROOT / "llmfleet" / "client.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    shared = {m for m in imports if m.startswith(("shared", "llmfleet"))}
    assert shared == {"shared.events", "shared.events.ownership"}, shared  # nothing the wheel does not ship


def test_dependencies_are_ranges_not_pins() -> None:
    dependencies = tomllib.loads(DIST.read_text())["project"]["dependencies"]
    assert {d.split(">")[0].split("<")[0].split("=")[0] for d in dependencies} == {
        "aiokafka",
        "pydantic",
        "opentelemetry-api",
        "typing-extensions",
    }
    assert all("==" not in d and ">=" in d for d in dependencies), dependencies


def test_the_client_uses_no_private_aiokafka_api() -> None:
    source = (ROOT / "llmfleet" / "client.py").read_text()
    attributes = {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)}
    assert not {a for a in attributes if a.startswith("_") and not a.startswith("__")} - {
        "_bootstrap", "_on_result", "_owns_topic", "_partitions", "_source", "_requests_topic", "_options",
        "_producer", "_consumer", "_waiting", "_reader", "_admin", "_create", "_delete", "_reply_partitions",
        "_describe", "_reader_ended", "_read_results",
    }  # fmt: skip
