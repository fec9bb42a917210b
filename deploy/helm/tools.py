"""The Helm chart's checks: `helm lint`, and `helm template` piped to kubeconform, for each values file.

    python -m deploy.helm.tools install   # helm v4 and kubeconform into .cache/bin, the schemas into .cache
    python -m deploy.helm.tools check     # lint + template + validate the chart with every values variant

Where the tools come from (no binary downloads reach this machine, the Go module proxy does):
- helm v4 (`helm.sh/helm/v4/cmd/helm`) and kubeconform (`github.com/yannh/kubeconform/cmd/kubeconform`)
  are built with `go install` into `.cache/bin` once; later runs find them there.
- kubeconform needs Kubernetes' JSON schemas. They are generated from PyPI's `kubernetes-validate`
  wheel (fetched with pip, not installed), which carries the OpenAPI-derived strict schemas of each
  Kubernetes release with their definitions in one shared file; kubeconform wants each kind's schema
  standalone, so `standalone_schema` copies into each kind's file the definitions it refers to.
- The CRDs the chart can render (ServiceMonitor, KEDA's ScaledObject and TriggerAuthentication)
  have no schema there: deploy/helm/schemas/ holds strict schemas of the fields the chart sets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "llmfleet"
CRD_SCHEMAS = ROOT / "deploy" / "helm" / "schemas"
CACHE = Path(os.environ.get("LLMFLEET_CACHE", ROOT / ".cache"))
BIN = CACHE / "bin"
HELM_VERSION = "v4.3.2"
KUBECONFORM_VERSION = "v0.8.0"
KUBERNETES_VERSION = "1.37.0"
SCHEMAS_WHEEL = ("kubernetes-validate", "1.37.0")
# The kinds the chart renders; a kind not listed here fails validation ("could not find schema").
KINDS = ("deployment-apps-v1", "statefulset-apps-v1", "service-v1", "serviceaccount-v1", "job-batch-v1")
SCHEMAS = CACHE / "helm-schemas" / f"v{KUBERNETES_VERSION}-strict"
DEFINITIONS_REF = re.compile(r"^[^#]*_definitions\.json#")
TOOLS = {
    "helm": f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}",
    "kubeconform": f"github.com/yannh/kubeconform/cmd/kubeconform@{KUBECONFORM_VERSION}",
}


class ToolsMissing(RuntimeError):
    """helm, kubeconform or the schemas are not here and cannot be built (no Go, no registry)."""


def _run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """Run one of our own commands (fixed arguments, paths under the repository), capturing its output."""
    return subprocess.run(command, capture_output=True, text=True, check=False, **options)  # noqa: S603


def go() -> str | None:
    """The Go toolchain: $GO, `go` on the PATH, or /usr/local/go/bin/go."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def tool(name: str) -> Path:
    """The path of a built tool in .cache/bin."""
    return BIN / name


def install_tools() -> None:
    """Build helm and kubeconform into .cache/bin unless they are there (minutes on two cores, once)."""
    missing = {name: module for name, module in TOOLS.items() if not tool(name).exists()}
    if not missing:
        return
    toolchain = go()
    if toolchain is None:
        raise ToolsMissing(f"no Go toolchain to build {', '.join(missing)} (set GO or install Go)")
    BIN.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"GOBIN": str(BIN), "GOFLAGS": "-buildvcs=false"}
    for name, module in missing.items():
        print(f"building {name} ({module}) into {BIN}", file=sys.stderr)
        done = _run([toolchain, "install", module], env=env)
        if done.returncode != 0:
            raise ToolsMissing(f"go install {module} failed: {done.stderr.strip()[-400:]}")


def _wheel() -> Path:
    """The schemas wheel, downloaded once into .cache with pip (never installed)."""
    name, version = SCHEMAS_WHEEL
    folder = CACHE / "helm-schemas" / "wheel"
    found = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if found:
        return found[0]
    # pip of the uv bootstrap environment (make setup), else any pip here: the project's own
    # environment (uv-managed) has none.
    pips = [[str(p)] for p in (CACHE / "uv" / "bin" / "pip", ROOT / ".cache" / "uv" / "bin" / "pip") if p.exists()]
    pips += [[found] for found in (shutil.which("pip3"), shutil.which("pip")) if found]
    errors = []
    for pip in pips:
        done = _run([*pip, "download", "--no-deps", "--quiet", f"{name}=={version}", "-d", str(folder)])
        found = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if done.returncode == 0 and found:
            return found[0]
        errors.append(f"{pip[0]}: {done.stderr.strip()[-200:]}")
    raise ToolsMissing(f"pip download {name}=={version} failed: {'; '.join(errors) or 'no pip found'}")


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` in a schema, anywhere in it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _local(node: Any) -> Any:
    """The same schema with `/api/_definitions.json#/$defs/X` turned into `#/$defs/X`."""
    if isinstance(node, dict):
        return {
            k: (DEFINITIONS_REF.sub("#", v) if k == "$ref" and isinstance(v, str) else _local(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_local(v) for v in node]
    return node


def standalone_schema(kind_schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A kind's schema with every definition it reaches (transitively) copied into its own `$defs`.

    The wheel's schemas are JSON Schema 2020-12 whose `$ref`s point into a shared `_definitions.json`
    by an https `$id`, which kubeconform would fetch; local references need no network.
    """
    needed: dict[str, Any] = {}
    pending = [ref.rsplit("/", 1)[-1] for ref in _refs(kind_schema)]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed[name] = definitions[name]
        pending += [ref.rsplit("/", 1)[-1] for ref in _refs(definitions[name])]
    own: dict[str, Any] = _local({k: v for k, v in kind_schema.items() if k != "$id"})
    return own | {"$defs": _local(needed)}


def install_schemas() -> Path:
    """Standalone strict schemas of the chart's kinds, and the CRD schemas, in one folder for kubeconform."""
    marker = SCHEMAS / ".complete"
    if marker.exists() and marker.read_text() == ",".join(KINDS):
        _copy_crd_schemas()
        return SCHEMAS
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/"
    with zipfile.ZipFile(_wheel()) as wheel:
        definitions = json.loads(wheel.read(prefix + "_definitions.json"))["$defs"]
        SCHEMAS.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            schema = standalone_schema(json.loads(wheel.read(f"{prefix}{kind}.json")), definitions)
            (SCHEMAS / f"{kind}.json").write_text(json.dumps(schema))
    _copy_crd_schemas()
    marker.write_text(",".join(KINDS))
    return SCHEMAS


def _copy_crd_schemas() -> None:
    for path in CRD_SCHEMAS.glob("*.json"):
        shutil.copyfile(path, SCHEMAS / path.name)


def install() -> None:
    """Everything `check` needs; raises ToolsMissing with the reason when it cannot be had."""
    install_tools()
    install_schemas()


def values_variants() -> list[Path | None]:
    """None (the chart's own values.yaml) and each file in the chart's ci/ folder."""
    return [None, *sorted((CHART / "ci").glob("*-values.yaml"))]


def lint(values: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`helm lint --strict` of the chart (with a values file)."""
    return _run([str(tool("helm")), "lint", "--strict", str(CHART), *(["-f", str(values)] if values else [])])


def template(values: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart (with a values file): the manifests, on stdout."""
    command = [str(tool("helm")), "template", "llmfleet", str(CHART), "--namespace", "llmfleet"]
    return _run(command + (["-f", str(values)] if values else []))


def validate(manifests: str) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict on manifests (stdin): every object against its kind's schema, none skipped."""
    location = str(install_schemas() / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    command = [str(tool("kubeconform")), "-strict", "-summary", "-output", "json"]
    command += ["-kubernetes-version", KUBERNETES_VERSION, "-schema-location", location, "-"]
    return _run(command, input=manifests)


def check() -> int:
    """Lint, render and validate with each values variant; prints what it ran; 0 when all pass."""
    failed = 0
    for values in values_variants():
        name = values.name if values else "values.yaml"
        linted = lint(values)
        rendered = template(values)
        checked = validate(rendered.stdout) if rendered.returncode == 0 else None
        ok = linted.returncode == 0 and checked is not None and checked.returncode == 0
        failed += not ok
        summary = json.loads(checked.stdout).get("summary", {}) if checked and checked.stdout.strip() else {}
        print(f"{'ok  ' if ok else 'FAIL'} {name}: helm lint --strict, helm template | kubeconform -strict: {summary}")
        if not ok:
            print(linted.stdout + linted.stderr + rendered.stderr + (checked.stdout if checked else ""))
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """`install` or `check` (install, then check)."""
    try:
        install()
    except ToolsMissing as error:
        print(f"helm chart tools unavailable: {error}", file=sys.stderr)
        return 2
    return 0 if argv[:1] == ["install"] else check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
