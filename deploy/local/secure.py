"""The secrets of a secure deployment: a CA, a server certificate, and passwords.

For the local stack (`llmfleet up --secure`) they are made once into `<run>/secure/`; for Docker
Compose's secure overlay, `python -m deploy.local.secure compose deploy/secrets` makes the
certificates for the containers' host names (see `compose_material`).

Made once into `<run>/secure/` (`.cache/stack/secure/` by default; mode 0700, files 0600) with
the `openssl` command-line tool:
- `ca.pem` (clients trust it: LLMFLEET_*_KAFKA_SSL_CAFILE, Postgres `sslrootcert`) and `ca.key`;
- `server.pem` / `server.key`: the certificate of 127.0.0.1 and localhost, for Kafka's listeners
  and PostgreSQL; `broker-keystore.pem` is key and certificate in one file (Kafka's PEM keystore);
  its subject `CN=llmfleet-broker` is the broker's own principal on the controller listener (mTLS);
- `credentials.json`: a random SCRAM password per Kafka principal (`admin` and each service).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.local.common import StackPaths
from shared.events.ownership import PRINCIPALS
from shared.kafka_security import KafkaProtocol, KafkaSecurity

ADMIN = "admin"  # the Kafka super user: topics, ACLs, SCRAM users, the CLI's operator tools
BROKER_SUBJECT = "CN=llmfleet-broker"
LOCAL_NAMES = ["127.0.0.1", "localhost"]
DAYS = 825  # the longest validity TLS clients accept for a server certificate


@dataclass(frozen=True)
class SecureMaterial:
    """Where the certificates are, and every principal's password."""

    folder: Path
    passwords: dict[str, str]

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker-keystore.pem"

    def kafka_security(self, principal: str) -> KafkaSecurity:
        """The SASL_SSL credentials of one principal (`admin` or a service)."""
        return KafkaSecurity(KafkaProtocol.SASL_SSL, principal, self.passwords[principal], str(self.ca))


def ensure_material(paths: StackPaths) -> SecureMaterial:
    """Make the CA, the server certificate and the passwords once; reuse them afterwards."""
    folder = paths.run / "secure"  # per stack instance: a test stack has a CA and passwords of its own
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask, and an older folder may be wider
    material = SecureMaterial(folder, _passwords(folder / "credentials.json"))
    if not material.keystore.exists():
        _make_certificates(folder, LOCAL_NAMES)
    return material


def compose_material(folder: Path, hosts: list[str]) -> list[Path]:
    """Certificates for deploy/compose.secure.yaml: one server certificate for the `kafka` and
    `postgres` containers and the names host-side clients use (`hosts`), signed by a new CA.

    The folder is 0700 and stays so; the files Compose mounts into containers are 0644 inside it,
    because Compose (outside swarm) bind-mounts a secret file as it is, and the containers' users
    (Kafka's uid 1000, PostgreSQL's 999) are not the host user who owns it. The folder's mode keeps
    other host users out. Only the CA's key, never mounted, stays 0600. Made once: an existing
    keystore is kept, so clients that trust the CA keep working.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    mounted = [folder / name for name in ("ca.pem", "server.pem", "server.key", "broker-keystore.pem")]
    if not (folder / "broker-keystore.pem").exists():
        _make_certificates(folder, ["kafka", "postgres", *LOCAL_NAMES, *hosts])
    for path in mounted:
        os.chmod(path, 0o644)
    return mounted


def _passwords(path: Path) -> dict[str, str]:
    """The stored passwords, with one added for any principal new since they were made."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {name: known.get(name) or secrets.token_urlsafe(24) for name in (ADMIN, *PRINCIPALS)}
    if wanted != known:
        _write_private(path, json.dumps(wanted, indent=2, sort_keys=True))
    return {**known, **wanted}


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.with_suffix(".tmp").replace(path)


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _subject_alt_names(hosts: list[str]) -> str:
    """`IP:` for addresses, `DNS:` for names, each once, in order."""
    names = []
    for host in dict.fromkeys(hosts):
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def _make_certificates(folder: Path, hosts: list[str]) -> None:
    """A self-signed CA, and a server certificate it signs for `hosts` (server and client use)."""
    ca_key, ca, key, cert = folder / "ca.key", folder / "ca.pem", folder / "server.key", folder / "server.pem"
    old = os.umask(0o077)
    try:
        _openssl(
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca)),
            *("-days", str(DAYS), "-subj", "/CN=llmfleet local CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        )
        with tempfile.TemporaryDirectory(dir=folder) as work:
            csr, ext = Path(work) / "server.csr", Path(work) / "server.ext"
            ext.write_text(
                f"subjectAltName={_subject_alt_names(hosts)}\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
            )
            _openssl(
                *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr)),
                *("-subj", "/" + BROKER_SUBJECT),
            )
            _openssl(
                *("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial"),
                *("-out", str(cert), "-days", str(DAYS), "-extfile", str(ext)),
            )
        # Kafka's PEM keystore: the PKCS#8 key and the certificate chain in one file.
        _write_private(folder / "broker-keystore.pem", key.read_text() + cert.read_text() + ca.read_text())
    finally:
        os.umask(old)


def main() -> None:
    """`python -m deploy.local.secure compose FOLDER [--host NAME ...]`: Compose's certificates."""
    parser = argparse.ArgumentParser(description="certificates for deploy/compose.secure.yaml")
    parser.add_argument("what", choices=["compose"])
    parser.add_argument("folder", type=Path, help="LLMFLEET_SECRETS_DIR (deploy/secrets by default)")
    parser.add_argument(
        "--host", action="append", default=[], help="another name clients reach Kafka by (LLMFLEET_KAFKA_EXTERNAL_HOST)"
    )
    args = parser.parse_args()
    for path in compose_material(args.folder, args.host):
        print(path)


if __name__ == "__main__":
    main()
