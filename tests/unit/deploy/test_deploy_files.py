"""The deployment files in ``deploy/``: the compose file, nginx's config and the Dockerfile.

Docker cannot run on the test machines, so the images are never built here:
the compose file and the Dockerfile are parsed and checked for what the
cluster needs, and nginx's config is checked by the real ``nginx -t``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from chatrelay.harness.processes import Command, free_port, spawn
from chatrelay.harness.readiness import http_ok, wait_ready
from tests.timing import seconds

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
NGINX = Path("/usr/sbin/nginx")
NGINX_PACKAGE = "nginx"
GATEWAYS = [f"gateway-{n}" for n in (1, 2, 3)]
WORKERS = [f"worker-{n}" for n in (1, 2, 3)]
SERVICES = {"nginx", *GATEWAYS, *WORKERS, "redis", "postgres", "kafka", "prometheus", "grafana"}
WORKER_URLS = "http://worker-1:8000,http://worker-2:8000,http://worker-3:8000"
# `nginx -t` reads and checks one small file; it is done in well under a second.
NGINX_TEST_TIMEOUT = seconds(30)
# nginx starts (and stops) in milliseconds; this is the noisy machine's margin.
NGINX_START_TIMEOUT = seconds(30)
# Programs a container must not run at start: everything is fetched at build time.
FETCHERS = {"pip", "pip3", "npm", "npx", "yarn", "curl", "wget", "git", "apt-get", "apt", "uv"}


# -- docker-compose.yml


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(compose, dict)
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the KEY=value form
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_compose_names_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


@pytest.mark.parametrize("name", GATEWAYS)
def test_compose_gateways_run_the_gateway_with_the_workers(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    gateway = services[name]
    assert _command(gateway) == ["chatrelay", "gateway", "--host", "0.0.0.0", "--port", "8080"]
    env = _environment(gateway)
    assert env["NODE_ID"] == name
    assert env["AI_SERVICE_URLS"] == WORKER_URLS
    assert env["CHATRELAY_INTERNAL_TOKEN"]
    assert "http://127.0.0.1:8080/health" in " ".join(gateway["healthcheck"]["test"])


@pytest.mark.parametrize("name", WORKERS)
def test_compose_workers_run_the_worker(services: dict[str, dict[str, Any]], name: str) -> None:
    worker = services[name]
    assert _command(worker) == ["chatrelay", "worker", "--host", "0.0.0.0", "--port", "8000"]
    env = _environment(worker)
    assert env["NODE_ID"] == name
    assert env["CHATRELAY_INTERNAL_TOKEN"]
    assert "http://127.0.0.1:8000/health" in " ".join(worker["healthcheck"]["test"])


@pytest.mark.parametrize("name", GATEWAYS + WORKERS)
def test_compose_nodes_share_redis_and_postgres(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    node = services[name]
    env = _environment(node)
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["CHATRELAY_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["CHATRELAY_DATABASE_URL"]
    assert node["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / node["build"]["context"]).resolve() == REPO
    assert {"redis", "postgres"} <= set(node["depends_on"])


def test_compose_nodes_all_have_one_internal_token(services: dict[str, dict[str, Any]]) -> None:
    nodes = GATEWAYS + WORKERS
    tokens = {_environment(services[name])["CHATRELAY_INTERNAL_TOKEN"] for name in nodes}
    assert len(tokens) == 1


def test_compose_nginx_serves_the_deploy_config(services: dict[str, dict[str, Any]]) -> None:
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(GATEWAYS) <= set(nginx["depends_on"])
    assert any(str(port).endswith(":80") for port in nginx["ports"])


# -- nginx.conf


def _nginx_binary() -> Path:
    if not NGINX.is_file():
        pytest.fail(
            f"{NGINX} not found: install the Debian package `{NGINX_PACKAGE}` "
            f"(apt-get install -y {NGINX_PACKAGE})",
            pytrace=False,
        )
    return NGINX


def _testable_copy(conf: str, folder: Path, gateway_ports: list[int], listen_port: int) -> str:
    """The config with its hosts and paths moved to this machine, its rules untouched.

    The gateways' names resolve only inside compose's network, and the pid and
    log paths belong to the container.
    """
    ports = iter(gateway_ports)
    conf, replaced = re.subn(
        r"server\s+gateway-\d+:8080", lambda _: f"server 127.0.0.1:{next(ports)}", conf
    )
    assert replaced == len(GATEWAYS)
    conf = re.sub(r"^pid\s+[^;]+;", f"pid {folder / 'nginx.pid'};", conf, flags=re.MULTILINE)
    conf = re.sub(r"error_log\s+[^;]+;", f"error_log {folder / 'error.log'};", conf)
    conf = re.sub(r"access_log\s+/[^;]+;", f"access_log {folder / 'access.log'};", conf)
    conf = re.sub(r"listen\s+80;", f"listen 127.0.0.1:{listen_port};", conf)
    temp_paths = "".join(
        f"\n    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {", "http {" + temp_paths, 1)


def _write_testable_copy(folder: Path, gateway_ports: list[int], listen_port: int) -> Path:
    conf = folder / "nginx.conf"
    conf.write_text(
        _testable_copy((DEPLOY / "nginx.conf").read_text(), folder, gateway_ports, listen_port)
    )
    return conf


@pytest.mark.external  # runs the real `nginx -t`
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = _nginx_binary()
    conf = _write_testable_copy(tmp_path, [free_port() for _ in GATEWAYS], free_port())
    result = subprocess.run(
        [str(nginx), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=NGINX_TEST_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class _EchoGateway(BaseHTTPRequestHandler):
    """Answers every GET with the path and headers it received, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx running the deploy config, in front of one echoing gateway; yields its URL.

    Every upstream entry points at the one gateway, so whichever one
    ip_hash picks answers.
    """
    nginx = _nginx_binary()
    folder = tmp_path_factory.mktemp("nginx")
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _EchoGateway)
    serving = threading.Thread(target=gateway.serve_forever, name="echo-gateway", daemon=True)
    serving.start()
    port = free_port()
    conf = _write_testable_copy(folder, [gateway.server_address[1]] * len(GATEWAYS), port)
    process = spawn(
        Command(
            [
                str(nginx),
                "-p",
                str(folder),
                "-e",
                str(folder / "error.log"),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            folder / "nginx.out",
            name="nginx",
        )
    )
    try:
        wait_ready(
            http_ok(f"http://127.0.0.1:{port}/health"),
            [process],
            "GET /health",
            NGINX_START_TIMEOUT,
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop(NGINX_START_TIMEOUT)
        gateway.shutdown()
        gateway.server_close()
        serving.join(NGINX_START_TIMEOUT)


def test_nginx_answers_health_itself(balancer: str) -> None:
    response = httpx.get(f"{balancer}/health", timeout=NGINX_TEST_TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "role": "nginx"}


@pytest.mark.parametrize("path", ["/api/health", "/ws/chat?session_id=s1", "/", "/docs"])
def test_nginx_proxies_to_a_gateway_with_the_client_address(balancer: str, path: str) -> None:
    response = httpx.get(f"{balancer}{path}", timeout=NGINX_TEST_TIMEOUT)
    assert response.status_code == 200
    seen = response.json()
    assert seen["path"] == path
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Real-IP"] == "127.0.0.1"


def test_nginx_passes_the_websocket_upgrade_on(balancer: str) -> None:
    handshake = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    response = httpx.get(f"{balancer}/ws/chat", headers=handshake, timeout=NGINX_TEST_TIMEOUT)
    headers = response.json()["headers"]
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "upgrade"
    assert headers["Sec-WebSocket-Key"] == handshake["Sec-WebSocket-Key"]


def test_nginx_keeps_plain_requests_keep_alive_upstream(balancer: str) -> None:
    # No Connection header for plain requests: the upstream keepalive pool is used.
    headers = httpx.get(f"{balancer}/api/x", timeout=NGINX_TEST_TIMEOUT).json()["headers"]
    assert "Connection" not in headers and "Upgrade" not in headers


def _directives(conf: str) -> list[str]:
    """Every directive, one per item, whitespace squeezed, comments dropped."""
    text = re.sub(r"#[^\n]*", "", conf)
    return [" ".join(part.split()) for part in re.split(r"[;{}]", text) if part.strip()]


def test_nginx_balances_sticky_over_the_three_gateways() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream\s+gateways\s*\{(?P<body>[^}]*)\}", conf)
    assert upstream is not None
    body = _directives(upstream["body"])
    assert "ip_hash" in body
    assert [d.split()[1] for d in body if d.startswith("server ")] == [
        f"{name}:8080" for name in GATEWAYS
    ]


def test_nginx_carries_websockets_and_keeps_idle_ones() -> None:
    directives = _directives((DEPLOY / "nginx.conf").read_text())
    assert "map $http_upgrade $connection_upgrade" in directives
    assert "proxy_http_version 1.1" in directives
    assert "proxy_set_header Upgrade $http_upgrade" in directives
    assert "proxy_set_header Connection $connection_upgrade" in directives
    assert "proxy_read_timeout 1h" in directives
    for location in ("location /ws/", "location /api/", "location /"):
        assert location in directives
    assert directives.count("proxy_pass http://gateways") == 3


def test_nginx_answers_its_own_health() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    health = re.search(r"location\s*=\s*/health\s*\{(?P<body>[^}]*)\}", conf)
    assert health is not None
    assert "return 200" in health["body"]
    assert "proxy_pass" not in health["body"]


# -- Dockerfile


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    return [(part.split(maxsplit=1)[0].upper(), part.split(maxsplit=1)[1]) for part in logical]


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image that runs (the last stage)."""
    instructions = _instructions((DEPLOY / "Dockerfile").read_text())
    starts = [n for n, (name, _) in enumerate(instructions) if name == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


def test_dockerfile_image_is_python_311_slim(final_stage: list[tuple[str, str]]) -> None:
    assert final_stage[0] == ("FROM", "python:3.11-slim")


def test_dockerfile_installs_the_package_with_its_cluster_extras(
    final_stage: list[tuple[str, str]],
) -> None:
    installs = [args for name, args in final_stage if name == "RUN" and "pip install" in args]
    assert installs, "the image never pip-installs chatrelay"
    extras = re.search(r"\"\.\[(?P<extras>[^\]]+)\]\"", installs[0])
    assert extras is not None, installs[0]
    assert {"redis", "postgres", "openai"} <= set(extras["extras"].split(","))
    assert " -e " not in f" {installs[0]} ", "an editable install needs the source at run time"


def test_dockerfile_copies_only_what_exists() -> None:
    instructions = _instructions((DEPLOY / "Dockerfile").read_text())
    for name, args in instructions:
        if name != "COPY" or args.startswith("--from="):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_runs_chatrelay_and_fetches_nothing_at_start(
    final_stage: list[tuple[str, str]],
) -> None:
    starts = [(name, args) for name, args in final_stage if name in {"CMD", "ENTRYPOINT"}]
    assert [name for name, _ in starts] == ["CMD"]
    command = json.loads(starts[0][1])  # the exec form: no shell in between
    assert command[:2] == ["chatrelay", "serve"]
    assert not FETCHERS & set(command)
    users = [args for name, args in final_stage if name == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_compose_wires_every_node_to_kafka(services: dict[str, dict[str, Any]]) -> None:
    for name in (*GATEWAYS, *WORKERS):
        assert _environment(services[name])["CHATRELAY_KAFKA_BOOTSTRAP"].endswith(":-kafka:9092}")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
