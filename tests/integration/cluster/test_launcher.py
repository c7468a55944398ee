"""``chatrelay cluster``'s behaviour around the edges: missing programs, no cluster, config."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from chatrelay.cluster import nginx
from chatrelay.cluster.manifest import pid_alive
from chatrelay.cluster.nginx import Balancing
from chatrelay.exceptions import MissingBinary
from chatrelay.harness.processes import find_program, free_port
from tests.fixtures.cluster import RunningCluster, running_cluster, start_cluster
from tests.integration.cluster.clients import chatrelay, http, new_session, new_user


def test_a_missing_redis_server_names_the_debian_package(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    run_dir = tmp_path / "run"
    result = chatrelay(
        "cluster",
        "up",
        "--port",
        str(free_port()),
        "--run-dir",
        str(run_dir),
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "redis-server not found" in result.stderr
    assert "apt-get install -y redis-server" in result.stderr
    assert not (run_dir / "cluster.json").exists()


def test_a_missing_program_names_its_package() -> None:
    with pytest.raises(MissingBinary) as missing:
        find_program("nginx-that-is-not-there", "nginx", also_in=())
    assert missing.value.package == "nginx"
    assert "apt-get install -y nginx" in str(missing.value)


@pytest.mark.parametrize("command", ["status", "down"])
def test_status_and_down_without_a_cluster_say_so(tmp_path: Path, command: str) -> None:
    result = chatrelay("cluster", command, "--run-dir", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "no cluster.json" in result.stdout


def test_redis_shards_with_an_external_redis_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    result = chatrelay(
        *("cluster", "up", "--redis-shards", "3", "--port", str(free_port())),
        *("--run-dir", str(run_dir)),
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--redis-shards starts its own Redis Cluster: unset REDIS_URL" in result.stderr
    assert not (run_dir / "cluster.json").exists()


@pytest.mark.parametrize("balancing", list(Balancing))
def test_the_generated_nginx_config_passes_nginx_t(tmp_path: Path, balancing: Balancing) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(
        nginx.render(
            tmp_path, f"127.0.0.1:{free_port()}", ["127.0.0.1:9001", "127.0.0.1:9002"], balancing
        )
    )
    text = config.read_text()
    assert balancing.directive in text
    for needle in (
        "daemon off;",
        "master_process on;",
        "proxy_read_timeout 3600s;",
        "location = /health",
        "$upstream_addr",
        "proxy_set_header Upgrade",
        f"pid {tmp_path}/nginx.pid;",
        f"error_log {tmp_path}/nginx-error.log",
    ):
        assert needle in text, needle
    assert nginx.check(find_program("nginx", "nginx"), tmp_path, config) is None


async def test_cluster_up_stores_on_a_throw_away_postgres_it_lists(cluster: RunningCluster) -> None:
    (server,) = cluster.of_role("postgres")
    assert server.pid is not None and pid_alive(server.pid)
    assert server.url.startswith("postgresql+asyncpg://")
    assert "database: a throw-away PostgreSQL" in cluster.launcher.log()
    session = new_session()
    async with http(cluster, "127.0.0.1") as client:
        response = await client.post(
            "/api/chat",
            json={"message": "stored where?", "session_id": session},
            headers={"X-User-Id": new_user()},
        )
    assert response.status_code == 202, response.text
    database = await asyncpg.connect(server.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        stored = await database.fetch(
            "SELECT role, content FROM messages WHERE session_id = $1 ORDER BY row_id", session
        )
    finally:
        await database.close()
    assert [(row["role"], row["content"]) for row in stored][:1] == [("user", "stored where?")]
    assert [row["role"] for row in stored] == ["user", "assistant"]


def test_its_postgres_stops_by_pid_and_leaves_no_files(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "run", gateways=1, workers=1)
    (server,) = cluster.of_role("postgres")
    assert server.log is not None
    folder = Path(server.log).parent
    assert (folder / "data" / "PG_VERSION").is_file()
    cluster.stop()  # also checks that no pid of cluster.json outlives the launcher
    assert server.pid is not None and not pid_alive(server.pid)
    assert not folder.exists()


def test_without_postgres_it_falls_back_to_sqlite_with_a_warning(tmp_path: Path) -> None:
    with running_cluster(
        tmp_path / "run", gateways=1, workers=1, options=("--database", "sqlite")
    ) as cluster:
        assert not cluster.of_role("postgres")
        log = cluster.launcher.log()
    assert "PostgreSQL is not installed" in log
    assert "not for load" in log
    assert (tmp_path / "run" / "chatrelay.db").is_file()
