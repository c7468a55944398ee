"""The Helm chart in ``deploy/helm/chatrelay``, rendered by the real ``helm``.

No Kubernetes runs here: ``helm lint`` checks the chart, ``helm template``
renders it, and the manifests are parsed and checked for what a cluster of
chatrelay needs: probes on ``/health``, a drain that fits the grace period,
Services that select the pods they serve, sticky WebSocket routing on the
session id, and only environment variables chatrelay reads.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIWebSocketRoute

from chatrelay.config import Settings
from chatrelay.gateway.app import create_app
from tests.timing import seconds

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "chatrelay"
# `make test` builds it (scripts/install-helm.sh); rendering takes well under a second.
HELM_TIMEOUT = seconds(60)
RELEASE = "chat"
REQUIRED = {
    "secrets.internalToken": "i" * 40,
    "secrets.secret": "s" * 40,
    "engine.url": "redis://redis:6379/0",
    "database.url": "postgresql+asyncpg://chatrelay:pw@postgres:5432/chatrelay",
}


def _set_flags(values: dict[str, str]) -> list[str]:
    return [flag for key, value in values.items() for flag in ("--set-string", f"{key}={value}")]


def _run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=HELM_TIMEOUT, check=False
    )


def _render(helm: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    done = _run_helm(helm, "template", RELEASE, str(CHART), *_set_flags(values))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _of_kind(manifests: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def _never_opened() -> Any:
    raise AssertionError("the routes are read, the app is never started")


def _chatrelay_settings() -> set[str]:
    """Every environment variable name chatrelay's Settings read."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias])
        names.update(choice for choice in choices if isinstance(choice, str))
    return names


@pytest.fixture(scope="module")
def manifests(helm: Path) -> list[dict[str, Any]]:
    return _render(helm, REQUIRED)


def test_lint_passes_strict(helm: Path) -> None:
    done = _run_helm(helm, "lint", "--strict", str(CHART), *_set_flags(REQUIRED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("secrets.internalToken", "secrets.internalToken is required"),
        ("secrets.secret", "secrets.secret is required in accounts mode"),
        ("engine.url", "engine.url is required"),
        ("database.url", "database.url is required"),
    ],
)
def test_a_missing_secret_fails_with_its_name(helm: Path, missing: str, message: str) -> None:
    values = {key: value for key, value in REQUIRED.items() if key != missing}
    done = _run_helm(helm, "template", RELEASE, str(CHART), *_set_flags(values))
    assert done.returncode != 0
    assert message in done.stderr


def test_dev_auth_is_refused(helm: Path) -> None:
    done = _run_helm(
        helm, "template", RELEASE, str(CHART), *_set_flags({**REQUIRED, "auth.mode": "dev"})
    )
    assert done.returncode != 0
    assert "auth.mode must be accounts or jwt" in done.stderr


def test_jwt_mode_needs_a_key_and_passes_it_on(helm: Path) -> None:
    jwt = {**REQUIRED, "auth.mode": "jwt"}
    del jwt["secrets.secret"]
    refused = _run_helm(helm, "template", RELEASE, str(CHART), *_set_flags(jwt))
    assert refused.returncode != 0
    assert "auth.mode=jwt needs" in refused.stderr

    jwks = "https://issuer.example/.well-known/jwks.json"
    rendered = _render(helm, {**jwt, "auth.jwt.jwksUrl": jwks, "auth.jwt.audience": "chat"})
    settings = _of_kind(rendered, "ConfigMap")[f"{RELEASE}-chatrelay-settings"]["data"]
    assert settings["CHATRELAY_AUTH_MODE"] == "jwt"
    assert settings["CHATRELAY_JWT_JWKS_URL"] == jwks
    assert settings["CHATRELAY_JWT_AUDIENCE"] == "chat"
    secret = _of_kind(rendered, "Secret")[f"{RELEASE}-chatrelay-secrets"]["stringData"]
    assert "CHATRELAY_SECRET" not in secret


def test_every_variable_the_chart_sets_is_a_chatrelay_setting(
    manifests: list[dict[str, Any]],
) -> None:
    known = _chatrelay_settings()
    set_by_chart: set[str] = set()
    for kind, field in (("ConfigMap", "data"), ("Secret", "stringData")):
        for doc in _of_kind(manifests, kind).values():
            set_by_chart.update(doc[field])
    for deployment in _of_kind(manifests, "Deployment").values():
        set_by_chart.update(entry["name"] for entry in _container(deployment).get("env", []))
    assert set_by_chart, "the chart sets no environment at all"
    assert sorted(set_by_chart - known) == []


def test_secrets_stay_out_of_the_config_map(manifests: list[dict[str, Any]]) -> None:
    settings = _of_kind(manifests, "ConfigMap")[f"{RELEASE}-chatrelay-settings"]["data"]
    secret = _of_kind(manifests, "Secret")[f"{RELEASE}-chatrelay-secrets"]["stringData"]
    assert secret["CHATRELAY_INTERNAL_TOKEN"] == REQUIRED["secrets.internalToken"]
    assert secret["CHATRELAY_DATABASE_URL"] == REQUIRED["database.url"]
    assert secret["CHATRELAY_ENGINE_URL"] == REQUIRED["engine.url"]
    for value in REQUIRED.values():
        assert value not in settings.values()


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_pods_probe_health_and_drain_within_their_grace(
    manifests: list[dict[str, Any]], role: str
) -> None:
    deployment = _of_kind(manifests, "Deployment")[f"{RELEASE}-chatrelay-{role}"]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["command"][:2] == ["chatrelay", role]

    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    port_names = {port["name"] for port in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names

    # preStop waits, then SIGTERM starts the drain; the grace period must cover both.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    settings = _of_kind(manifests, "ConfigMap")[f"{RELEASE}-chatrelay-settings"]["data"]
    drain = float(settings["CHATRELAY_DRAIN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_each_role_has_a_disruption_budget_and_an_autoscaler(
    manifests: list[dict[str, Any]], role: str
) -> None:
    name = f"{RELEASE}-chatrelay-{role}"
    deployment = _of_kind(manifests, "Deployment")[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    budget = _of_kind(manifests, "PodDisruptionBudget")[name]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] >= 1

    autoscaler = _of_kind(manifests, "HorizontalPodAutoscaler")[name]
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # An autoscaled Deployment leaves its replica count to the autoscaler.
    assert "replicas" not in deployment["spec"]


def test_services_select_their_pods_and_gateways_reach_workers(
    manifests: list[dict[str, Any]],
) -> None:
    deployments = _of_kind(manifests, "Deployment")
    services = _of_kind(manifests, "Service")
    for role in ("gateway", "worker"):
        name = f"{RELEASE}-chatrelay-{role}"
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= pod_labels.items()
        other = "worker" if role == "gateway" else "gateway"
        other_labels = deployments[f"{RELEASE}-chatrelay-{other}"]["spec"]["template"]
        assert (
            not services[name]["spec"]["selector"].items()
            <= other_labels["metadata"]["labels"].items()
        )

    env = {
        entry["name"]: entry
        for entry in _container(deployments[f"{RELEASE}-chatrelay-gateway"])["env"]
    }
    worker_service = services[f"{RELEASE}-chatrelay-worker"]
    (worker_port,) = worker_service["spec"]["ports"]
    assert env["CHATRELAY_AI_SERVICE_URLS"]["value"] == (
        f"http://{worker_service['metadata']['name']}:{worker_port['port']}"
    )
    worker = _container(deployments[f"{RELEASE}-chatrelay-worker"])
    assert str(worker_port["port"]) in worker["command"]


def test_websockets_are_hashed_on_the_session_id(manifests: list[dict[str, Any]]) -> None:
    ingresses = _of_kind(manifests, "Ingress")
    app = create_app(_never_opened, max_body_bytes=1024)
    websocket_paths = set(app.socket_routes) | {
        route.path for route in app.router.routes if isinstance(route, APIWebSocketRoute)
    }
    assert websocket_paths == {"/ws/chat"}

    ws = ingresses[f"{RELEASE}-chatrelay-ws"]
    annotations = ws["metadata"]["annotations"]
    # The socket's URL carries the session as ?session_id= (docs/protocol.md).
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$arg_session_id"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    (rule,) = ws["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert all(route.startswith(path["path"]) for route in websocket_paths)
    assert path["backend"]["service"]["name"] == f"{RELEASE}-chatrelay-gateway"

    web = ingresses[f"{RELEASE}-chatrelay-web"]
    assert "nginx.ingress.kubernetes.io/upstream-hash-by" not in web["metadata"]["annotations"]
    assert rule["host"] == web["spec"]["rules"][0]["host"]
