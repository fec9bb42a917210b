"""PostgreSQL 15 in a data folder of its own, with one schema and one login role per service.

Each service's role owns its schema and nothing else; `public` is closed to everyone, so a
service can neither read nor write another service's tables. Every connection, the unix socket's
too, proves its password with SCRAM-SHA-256 (no `trust`); the folder that holds the socket and the
data can be entered only by the user PostgreSQL runs as. `start(secure=True)` also turns TLS on
(the local stack's certificate, `deploy/local/secure.py`) and refuses TCP connections without it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deploy.local.common import (
    StackPaths,
    free_port,
    kill_pid,
    locked_state,
    pid_alive,
    read_state,
    spawn,
    stack_paths,
    stop_pid,
    tcp_open,
    wait_until,
)

PG_BIN = Path(os.environ.get("LLMFLEET_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "llmfleet"
SUPERUSER = "llmfleet_admin"
SERVICES = ("router", "allocator", "scaler", "cost", "monitor", "gateway")
DEFAULT_PORT = 55432
HBA_HEADER = "# Written by deploy/local/postgres.py on every start; edit that file, not this one.\n"


def role_password(service: str) -> str:
    """The local stack's password for a service role (dev only; production sets its own)."""
    return f"{service}-local"


def _run_as() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: run it as the `postgres` system user then."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("postgres")


def _reachable_by_others(folder: Path) -> bool:
    """True when every folder above `folder` lets other users through (o+x)."""
    return all(parent.stat().st_mode & 0o001 for parent in [folder, *folder.parents] if parent.exists())


def _postgres_home(paths: StackPaths, user: pwd.struct_passwd | None) -> Path:
    """The folder for PostgreSQL's data, socket and password file.

    Normally `<run>/postgres`. When PostgreSQL runs as its own user and cannot reach the run
    folder (a checkout under a private folder, e.g. `mktemp -d`), the data goes to /var/tmp
    instead, and `<run>/postgres` becomes a link to it so it is still found where expected.
    """
    home = paths.run / "postgres"
    if user is None or home.is_symlink() or _reachable_by_others(paths.run):
        return home.resolve()
    digest = hashlib.sha1(str(paths.run).encode()).hexdigest()[:12]  # noqa: S324 - a name, not security
    outside = Path("/var/tmp") / f"llmfleet-postgres-{digest}"  # noqa: S108 - ownership checked below
    outside.mkdir(mode=0o700, exist_ok=True)
    if outside.is_symlink() or outside.stat().st_uid not in (0, user.pw_uid):
        raise RuntimeError(f"{outside} exists and belongs to someone else; remove it or move the checkout")
    os.chown(outside, user.pw_uid, user.pw_gid)
    if home.exists():
        shutil.rmtree(home)  # an unusable half-made folder from an earlier try
    home.symlink_to(outside, target_is_directory=True)
    return outside


def _run(cmd: list[str], user: pwd.struct_passwd | None) -> None:
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")


def _initdb(pg_dir: Path, user: pwd.struct_passwd | None) -> Path:
    data = pg_dir / "data"
    if (data / "PG_VERSION").exists():
        return data
    if data.exists():
        shutil.rmtree(data)  # a half-made folder from an interrupted initdb
    pg_dir.mkdir(parents=True, exist_ok=True)
    if user:
        os.chown(pg_dir, user.pw_uid, user.pw_gid)
    pwfile = pg_dir / "pwfile"
    pwfile.write_text(role_password("admin"))
    if user:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        user,
    )
    pwfile.unlink()
    return data


def hba_conf(secure: bool) -> str:
    """Client authentication: SCRAM for every role on the socket and on TCP; TLS required on TCP when secure."""
    tcp = "hostssl" if secure else "host"
    lines = [
        "local all all scram-sha-256",
        f"{tcp} all all 127.0.0.1/32 scram-sha-256",
        f"{tcp} all all ::1/128 scram-sha-256",
    ]
    if secure:
        lines += ["hostnossl all all all reject"]
    return HBA_HEADER + "\n".join(lines) + "\n"


def _private_folder(pg_dir: Path, user: pwd.struct_passwd | None) -> None:
    """The socket's and the data's folder: only the user PostgreSQL runs as may enter it (0700)."""
    if user:
        os.chown(pg_dir, user.pw_uid, user.pw_gid)
    os.chmod(pg_dir, 0o700)


def _prepare(pg_dir: Path, data: Path, user: pwd.struct_passwd | None, paths: StackPaths, secure: bool) -> None:
    """Before every start: pg_hba.conf (also replacing the `trust` of a folder made before), TLS files."""
    hba = data / "pg_hba.conf"
    hba.write_text(hba_conf(secure))
    files = [hba]
    if secure:
        from deploy.local.secure import ensure_material

        material = ensure_material(paths)
        for source, name in ((material.server_cert, "server.crt"), (material.server_key, "server.key")):
            target = data / name
            target.touch(mode=0o600)
            target.write_bytes(source.read_bytes())
            files.append(target)
    for path in files:
        os.chmod(path, 0o600)  # PostgreSQL refuses a key others can read
        if user:
            os.chown(path, user.pw_uid, user.pw_gid)


def _admin_env() -> dict[str, str]:
    """The admin's password for psql (the socket asks for it too)."""
    return {**os.environ, "PGPASSWORD": role_password("admin")}


def start(paths: StackPaths | None = None, secure: bool = False) -> dict[str, Any]:
    """Start PostgreSQL (idempotent), create the database, roles and schemas; return its address.

    `secure`: TLS on (the stack's own CA signs the certificate) and TCP without TLS refused.
    """
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        current = state.get("postgres")
        if current and pid_alive(current["pid"]) and tcp_open(current["port"]):
            if bool(current.get("ssl")) != secure:
                raise RuntimeError(f"PostgreSQL runs {'with' if current.get('ssl') else 'without'} TLS; stop it first")
            return dict(current)
        user = _run_as()
        pg_dir = _postgres_home(paths, user)
        data = _initdb(pg_dir, user)
        _private_folder(pg_dir, user)
        _prepare(pg_dir, data, user, paths, secure)
        preferred = current["port"] if current else DEFAULT_PORT
        port = free_port(preferred)
        log = paths.logs / "postgres.log"
        log.touch()
        if user:
            os.chown(log, user.pw_uid, user.pw_gid)
        (data / "postmaster.pid").unlink(missing_ok=True)  # stale after a kill; the pid is ours to check
        cmd = [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={pg_dir}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "fsync=on",
            "-c",
            "password_encryption=scram-sha-256",
        ]
        if secure:
            cmd += ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]
        pid = _spawn_as(cmd, log, user)
        wait_until(lambda: _ready(pg_dir, port, user), 60, "PostgreSQL", log)
        _provision(pg_dir, port, user)
        info = {
            "pid": pid,
            "port": port,
            "host": "127.0.0.1",
            "database": DATABASE,
            "log": str(log),
            "superuser": SUPERUSER,
            "version": _version(),
            "ssl": secure,
            "socket_dir": str(pg_dir),
        }
        if secure:
            from deploy.local.secure import ensure_material

            info["ssl_rootcert"] = str(ensure_material(paths).ca)
        state["postgres"] = info
        return info


def _spawn_as(cmd: list[str], log: Path, user: pwd.struct_passwd | None) -> int:
    if user is None:
        return spawn(cmd, log)
    # setpriv execs in place, so the pid we record is the postmaster's own.
    return spawn(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *cmd], log)


def _psql(pg_dir: Path, port: int, user: pwd.struct_passwd | None, sql: str, db: str = "postgres") -> str:
    cmd = [
        str(PG_BIN / "psql"),
        "-h",
        str(pg_dir),
        "-p",
        str(port),
        "-U",
        SUPERUSER,
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-tA",
        "-c",
        sql,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, user=user.pw_uid if user else None, env=_admin_env()
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _ready(pg_dir: Path, port: int, user: pwd.struct_passwd | None) -> bool:
    try:
        return _psql(pg_dir, port, user, "select 1") == "1"
    except RuntimeError:
        return False


def provisioning_sql(password_for: Callable[[str], str] = role_password) -> list[str]:
    """Statements that give each service a login role owning exactly one schema (idempotent)."""
    statements = [f"revoke all on database {DATABASE} from public", "revoke all on schema public from public"]
    for service in SERVICES:
        password = password_for(service).replace("'", "''")
        statements += [
            # The password is set again on every run: it is the deployment's (or the local stack's),
            # and a role made under md5 gets a SCRAM verifier, the only kind pg_hba.conf accepts.
            f"do $$ begin if not exists (select from pg_roles where rolname='{service}') then "
            f"create role {service} login password '{password}'; "
            f"else alter role {service} login password '{password}'; end if; end $$",
            f"grant connect, temporary on database {DATABASE} to {service}",
            f"create schema if not exists {service} authorization {service}",
            f"alter role {service} set search_path = {service}",
        ]
    return statements


def _provision(pg_dir: Path, port: int, user: pwd.struct_passwd | None) -> None:
    """Create the database, then the per-service roles and schemas."""
    if _psql(pg_dir, port, user, f"select count(*) from pg_database where datname='{DATABASE}'") == "0":  # noqa: S608 - constant
        _psql(pg_dir, port, user, f"create database {DATABASE}")
    _psql(pg_dir, port, user, "; ".join(provisioning_sql()), db=DATABASE)


def database_url(service: str, info: dict[str, Any], driver: str = "postgresql+asyncpg") -> str:
    """The SQLAlchemy URL with which `service` reaches its own schema (over verified TLS when it runs with TLS)."""
    url = f"{driver}://{service}:{role_password(service)}@{info['host']}:{info['port']}/{info['database']}"
    if not info.get("ssl"):
        return url
    if driver.endswith("+asyncpg"):
        # SQLAlchemy hands URL options to asyncpg.connect as arguments, and `sslrootcert` is none:
        # asyncpg then takes the CA from PGSSLROOTCERT (`ssl_env`), as libpq does.
        return f"{url}?ssl=verify-full"
    return f"{url}?sslmode=verify-full&sslrootcert={quote(str(info['ssl_rootcert']), safe='/')}"


def ssl_env(info: dict[str, Any]) -> dict[str, str]:
    """PGSSLROOTCERT for a process that connects with `database_url` to a server with TLS (else nothing)."""
    return {"PGSSLROOTCERT": str(info["ssl_rootcert"])} if info.get("ssl") else {}


def _version() -> str:
    out = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def stop(paths: StackPaths | None = None) -> None:
    """Stop PostgreSQL (fast shutdown); the data folder stays."""
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        info = state.pop("postgres", None)
        if info:
            stop_pid(info["pid"], timeout=30, sig=signal.SIGINT)  # SIGINT = fast shutdown


def remove_data(paths: StackPaths | None = None) -> None:
    """Delete the (stopped) server's data folder, also when it lives outside the run folder."""
    home = (paths or stack_paths()).run / "postgres"
    if home.is_symlink():
        shutil.rmtree(home.resolve(), ignore_errors=True)
        home.unlink()
    elif home.exists():
        shutil.rmtree(home)


def kill(paths: StackPaths | None = None) -> None:
    """SIGKILL PostgreSQL (for crash tests); `start` brings it back on the same port."""
    paths = paths or stack_paths()
    info = read_state(paths).get("postgres")
    if info:
        kill_pid(info["pid"])


def status(paths: StackPaths | None = None) -> dict[str, Any]:
    """What is recorded for PostgreSQL, and whether it answers."""
    info = dict(read_state(paths or stack_paths()).get("postgres") or {})
    info["running"] = bool(info) and pid_alive(info["pid"]) and tcp_open(info["port"])
    return info


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "status"
    actions: dict[str, Callable[[], object]] = {"up": start, "down": stop, "status": status, "remove-data": remove_data}
    print(actions[action]())
