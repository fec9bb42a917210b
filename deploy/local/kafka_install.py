"""Kafka's one-time preparation: its jars from Maven Central, a Java runtime, the KRaft storage.

The jars are resolved once into the cache (`deploy/local/kafka/pom.xml`); the data folder is
formatted only once (single-voter dynamic quorum), so topics and offsets survive restarts.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from deploy.local.common import StackPaths

KAFKA_VERSION = "4.1.2"
STATIC = Path(__file__).resolve().parent / "kafka"  # pom.xml and log4j2.xml


def ensure_installed(paths: StackPaths) -> Path:
    """Resolve Kafka's jars from Maven Central into the cache once; return the libs folder."""
    home = paths.cache / f"kafka-{KAFKA_VERSION}"
    libs, marker = home / "libs", home / ".installed"
    if marker.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two installs at once: the second waits, then reuses
        if marker.exists():
            return libs
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(libs, ignore_errors=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("Maven (mvn) is needed to fetch Kafka's jars: apt-get install maven")
        cmd = [
            mvn,
            "-q",
            "-B",
            "--no-transfer-progress",
            "-f",
            str(STATIC / "pom.xml"),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise RuntimeError(f"resolving Kafka {KAFKA_VERSION} failed:\n{result.stdout}{result.stderr}")
        staging.rename(libs)
        marker.write_text("\n".join(sorted(jar.name for jar in libs.glob("*.jar"))) + "\n")
    return libs


def format_storage(libs: Path, config: Path, data: Path, scram_users: dict[str, str] | None = None) -> None:
    """Format the KRaft storage (single-voter dynamic quorum) unless the data folder already is.

    `scram_users` (name: password) are written into the first metadata as SCRAM-SHA-512 users.
    """
    if (data / "meta.properties").exists():  # written last by the formatter
        return
    shutil.rmtree(data, ignore_errors=True)  # a half-made folder from an interrupted format
    cmd = [
        java_binary(),
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={STATIC / 'log4j2.xml'}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        _cluster_id(),
        "-c",
        str(config),
    ]
    for name, password in (scram_users or {}).items():
        cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def _cluster_id() -> str:
    """A random cluster id in Kafka's Uuid form: 16 bytes, URL-safe base64, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's own generator avoids these too
            return cluster_id


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Kafka needs Java 17+: apt-get install openjdk-17-jre-headless")
    return java
