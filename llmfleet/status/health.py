"""`llmfleet status`'s verdict and exit code from what the checks found (pure: no I/O).

Exit codes (scripts and probes can rely on them):
- 0 healthy: everything the target names answered, and every service that was checked is ready;
- 1 unhealthy: the platform answers, but a service is not ready (or not running), a schema is not
  migrated, a role is refused, or a platform topic is missing;
- 2 a usage error (a bad option: click's own code, kept apart from the platform's state);
- 3 unreachable: the broker does not answer, no database answers, or nothing runs at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEALTHY, UNHEALTHY, UNREACHABLE = 0, 1, 3
# What reading a service's schema can end in (see read.read_service).
DB_OK, DB_NOT_GIVEN, DB_UNREACHABLE, DB_NOT_MIGRATED, DB_REFUSED = (
    "ok",
    "not_given",
    "unreachable",
    "not_migrated",
    "refused",
)


def verdict(
    kafka: Mapping[str, Any] | None, databases: Mapping[str, str], services: Mapping[str, Mapping[str, Any]]
) -> tuple[int, list[str]]:
    """The exit code and the reasons for it.

    `kafka`: None when the target names no broker, else {"reachable", "missing_topics", "error"}.
    `databases`: per service read, one of the DB_* states.
    `services`: per service checked, {"running"?, "health", "ready"} (running False: recorded, not running).
    """
    unreachable: list[str] = []
    unhealthy: list[str] = []
    if kafka is not None:
        if not kafka.get("reachable"):
            unreachable.append(f"kafka at {kafka.get('bootstrap')} does not answer ({kafka.get('error', '')})")
        elif kafka.get("missing_topics"):
            unhealthy.append(f"kafka: topics missing: {', '.join(kafka['missing_topics'])}")
    given = {s: state for s, state in databases.items() if state != DB_NOT_GIVEN}
    if given and all(state == DB_UNREACHABLE for state in given.values()):
        unreachable.append("no service's database answers")
    else:
        failed = sorted((s, state) for s, state in given.items() if state != DB_OK)
        unhealthy += [f"{s}: database {state.replace('_', ' ')}" for s, state in failed]
    for name, check in sorted(services.items()):
        if check.get("running") is False:
            unhealthy.append(f"{name}: not running")
        elif not check.get("ready"):
            unhealthy.append(f"{name}: not ready ({check.get('detail') or 'no answer'})")
    if kafka is None and not given and not services:
        unreachable.append("nothing to check: no broker, database or service endpoint is known")
    if unreachable:
        return UNREACHABLE, unreachable + unhealthy
    return (UNHEALTHY, unhealthy) if unhealthy else (HEALTHY, [])


def is_unreachable(exc: BaseException) -> bool:
    """Whether a failure means the server did not answer at all (refused, no route, timed out).

    A role refused, a missing table or a bad query answer; they are not this.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError | TimeoutError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
