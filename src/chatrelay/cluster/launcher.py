"""``chatrelay cluster up``: redis-server, PostgreSQL, M workers, N gateways and nginx.

Redis: one in-memory ``redis-server``; ``REDIS_URL`` when set (not started);
or, with ``--redis-shards N``, a Redis Cluster of N masters and N replicas
(``cluster/redis_shards.py``), each node a child listed in ``cluster.json``.

The database: ``CHATRELAY_DATABASE_URL`` when set; else a throw-away
PostgreSQL server (``harness/postgres.py``: a fresh data folder under the
system temp dir, deleted when the cluster stops) when PostgreSQL is
installed; else, with a warning, one SQLite file in the run folder (several
processes sharing one SQLite file take turns at its one write lock: fine to
try things, not a cluster). ``--database`` forces either.

Start order: redis, PostgreSQL, the first worker (it brings the database schema up to
date, so no two processes migrate at once), every other node, then nginx.
Each must answer (Redis ``PING``, ``GET /health``) before the cluster is
declared ready. Stop order is the reverse, each tier by pid: SIGTERM, then
SIGKILL after a grace period. A child that dies on its own is logged, not
restarted unless asked: SIGUSR1 to the launcher starts every child that
ended again, on its own port (fault tests and ``bench/chaos.py`` use it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from chatrelay.cluster import nginx
from chatrelay.cluster.children import Child
from chatrelay.cluster.kafka import KafkaPlan
from chatrelay.cluster.layout import Database, Layout, node_command, without_password
from chatrelay.cluster.manifest import Manifest, ProcessRecord, pid_alive
from chatrelay.cluster.nginx import Balancing
from chatrelay.cluster.redis_shards import describe, shard_nodes, start_shards
from chatrelay.cluster.status import process_table
from chatrelay.exceptions import ClusterError, MissingBinary, ProcessError
from chatrelay.harness import postgres
from chatrelay.harness.processes import (
    LOOPBACK,
    Command,
    Process,
    find_program,
    free_port,
    port_free,
    spawn,
    stop_all,
)
from chatrelay.harness.readiness import HealthCheck, all_of, http_ok, tcp_accepts, wait_ready
from chatrelay.harness.redis import redis_command, redis_pong

logger = logging.getLogger(__name__)

# Exit codes of ``cluster up`` besides 0 (stopped on request).
EXIT_FAILED = 1
EXIT_MISSING_PROGRAM = 3
# How often startup polls what it waits for.
PROBE_INTERVAL_SECONDS = 0.1
# Why a dead Redis Cluster node stays dead (cluster/redis_shards.py).
NOT_RESTARTED = ", ever (a Redis Cluster node: a dead master's replica takes over)"
# How often the supervisor looks for children that died.
SUPERVISE_INTERVAL_SECONDS = 0.5


SQLITE_WARNING = (
    "PostgreSQL is not installed (apt-get install -y postgresql): the nodes share one SQLite"
    " file, %s. Several processes writing one SQLite file take turns at its single write"
    " lock: fine to try the cluster, not to load it."
)
# The database ``cluster up`` creates in its throw-away PostgreSQL.
POSTGRES_DATABASE = "chatrelay"


@dataclass(frozen=True)
class ClusterSpec:
    """What to start: counts, where nginx listens, how it balances, where files go."""

    gateways: int = 3
    workers: int = 3
    port: int = 8080
    host: str = LOOPBACK
    balancing: Balancing = Balancing.IP_HASH
    run_dir: Path = Path("run/cluster")
    # Per tier: gateways drain sockets within uvicorn's 10 s graceful shutdown.
    grace: float = 12.0
    startup_timeout: float = 90.0
    database: Database = Database.AUTO
    # Start a Kafka broker for the event log and wire every node to it.
    kafka: bool = False
    # Masters of a Redis Cluster to start (each with a replica); 0: one redis-server.
    redis_shards: int = 0


class _StopRequested(Exception):
    """A signal asked the launcher to stop while it was still starting."""


@dataclass
class Launcher:
    """Runs one local cluster from start to stop; ``run`` returns the exit code."""

    spec: ClusterSpec
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _hurry: threading.Event = field(default_factory=threading.Event)
    _restart: threading.Event = field(default_factory=threading.Event)
    _manifest: Manifest | None = None
    _postgres_root: Path | None = None
    _database: str = ""
    _redis: str = ""

    def run(self) -> int:
        """Start everything, supervise until SIGINT/SIGTERM/SIGHUP, stop everything."""
        with self._signals():
            try:
                started = time.monotonic()
                self._start()
                self._announce(time.monotonic() - started)
                self._supervise()
                return 0
            except MissingBinary as exc:
                logger.error("%s", exc)
                return EXIT_MISSING_PROGRAM
            except ProcessError as exc:
                logger.error("cluster failed to start: %s", exc)
                return EXIT_FAILED
            except _StopRequested:
                logger.info("stop requested while starting")
                return 0
            finally:
                self._stop_all()

    # -- starting

    def _start(self) -> None:
        spec = self.spec
        if spec.gateways < 1 or spec.workers < 1:
            raise ClusterError("a cluster needs at least one gateway and one worker")
        if spec.redis_shards < 0:
            raise ClusterError("--redis-shards needs at least one master")
        external_redis = bool(self.environ.get("REDIS_URL"))
        if external_redis and spec.redis_shards:
            raise ClusterError("--redis-shards starts its own Redis Cluster: unset REDIS_URL")
        redis_binary = None if external_redis else find_program("redis-server", "redis-server")
        if spec.redis_shards:
            find_program("redis-cli", "redis-tools")  # creates the cluster; missing: exit 3 now
        nginx_binary = find_program("nginx", "nginx")

        run_dir = spec.run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running(run_dir)
        if not port_free(spec.host, spec.port):
            raise ClusterError(f"port {spec.port} on {spec.host} is in use: choose another --port")

        layout = Layout.plan(
            run_dir, spec.workers, spec.gateways, self.environ, own_redis=not spec.redis_shards
        )
        start_postgres = self._wants_postgres()

        config_path = run_dir / "nginx.conf"
        config_path.write_text(
            nginx.render(
                run_dir, f"{spec.host}:{spec.port}", layout.gateway_addresses, spec.balancing
            )
        )
        complaint = nginx.check(nginx_binary, run_dir, config_path)
        if complaint:
            raise ClusterError(f"nginx -t rejected {config_path}:\n{complaint}")

        self._manifest = Manifest(
            url=f"http://{spec.host}:{spec.port}",
            run_dir=str(run_dir),
            balancing=spec.balancing.value,
            launcher_pid=os.getpid(),
            started_at=time.time(),
        )
        if spec.redis_shards:
            layout = dataclasses.replace(layout, redis_url=self._start_redis_cluster(layout))
        elif redis_binary is not None and layout.redis_port is not None:
            command = redis_command(redis_binary, layout.redis_port, run_dir)
            redis = self._spawn("redis", "redis", command, layout.redis_url, None, self.environ)
            self._wait_until(redis_pong(layout.redis_port), [redis], "redis PING")
            self._redis = f"one redis-server {layout.redis_url} (in memory)"
        else:
            logger.info("using the Redis of REDIS_URL: %s", without_password(layout.redis_url))
            self._redis = f"REDIS_URL {without_password(layout.redis_url)} (not started here)"
        if start_postgres:
            layout = dataclasses.replace(layout, database_url=self._start_postgres(layout))
            self._database = "a throw-away PostgreSQL (deleted at stop)"
        elif "CHATRELAY_DATABASE_URL" in self.environ:
            logger.info("using the database of CHATRELAY_DATABASE_URL")
            self._database = "CHATRELAY_DATABASE_URL"
        else:
            logger.warning(SQLITE_WARNING, layout.database_url)
            self._database = f"SQLite {layout.database_url} (one write lock: not for load)"

        node_extra = self._start_kafka(run_dir) if spec.kafka else {}

        def start_node(role: str, index: int, port: int, **extra: str) -> Child:
            node_id, url = f"{role}-{index}", f"http://{LOOPBACK}:{port}"
            env = layout.node_env(node_id, **node_extra, **extra)
            return self._spawn(role, node_id, node_command(role, port), url, f"{url}/health", env)

        first = start_node("worker", 1, layout.worker_ports[0])
        self._wait_healthy([first])  # it migrated the schema; the others find it done
        rest = [
            start_node("worker", i, port) for i, port in enumerate(layout.worker_ports[1:], start=2)
        ]
        workers = ",".join(layout.worker_urls)
        rest += [
            start_node("gateway", i, port, AI_SERVICE_URLS=workers)
            for i, port in enumerate(layout.gateway_ports, start=1)
        ]
        self._wait_healthy(rest)

        probe_host = LOOPBACK if spec.host in ("0.0.0.0", "") else spec.host
        balancer = self._spawn(
            "nginx",
            "nginx",
            nginx.command(nginx_binary, run_dir, config_path),
            self._manifest.url,
            f"http://{probe_host}:{spec.port}/health",
            self.environ,
            log_name="nginx-error.log",
        )
        self._wait_healthy([balancer])
        self._manifest.ready = True
        self._write_manifest()

    def _start_redis_cluster(self, layout: Layout) -> str:
        """Start the Redis Cluster (``--redis-shards``); its ``redis-cluster://`` URL."""
        self._check_stop()
        promised = {*layout.worker_ports, *layout.gateway_ports, self.spec.port}
        cluster = start_shards(
            layout.run_dir, self.spec.redis_shards, self.spec.startup_timeout, promised
        )
        for node_id, node in shard_nodes(cluster):
            url = f"redis://{node.address}"
            self._add_child("redis", node_id, node.process, url, None, restartable=False)
        self._redis = describe(cluster)
        return cluster.url

    def _start_kafka(self, run_dir: Path) -> dict[str, str]:
        """Start the broker (``--kafka``); return what every node's environment gains."""
        plan = KafkaPlan.pick(run_dir)
        broker = self._spawn(
            "kafka", "kafka", plan.command(), f"kafka://{plan.bootstrap}", None, self.environ
        )
        self._wait_until(tcp_accepts(plan.port), [broker], "the Kafka broker")
        return {"CHATRELAY_KAFKA_BOOTSTRAP": plan.bootstrap}

    def _wants_postgres(self) -> bool:
        """Whether to start a PostgreSQL server; raises ``MissingBinary`` if asked and absent."""
        if "CHATRELAY_DATABASE_URL" in self.environ or self.spec.database == Database.SQLITE:
            return False
        if self.spec.database == Database.POSTGRES:
            postgres.find_bin_dir()
            return True
        return postgres.postgres_installed()

    def _start_postgres(self, layout: Layout) -> str:
        """A throw-away server (a child like the others); the URL of its fresh database."""
        assert self._manifest is not None
        self._check_stop()
        self._postgres_root = postgres.new_root()
        folder = postgres.init_postgres(self._postgres_root, self.spec.startup_timeout)
        taken = {layout.redis_port, *layout.worker_ports, *layout.gateway_ports}
        taken |= {child.process.port for child in self.children}
        while (port := free_port()) in taken:
            pass
        command = postgres.postgres_command(folder, port, new_session=True, die_with_parent=True)
        url = postgres.database_url(port, POSTGRES_DATABASE)
        server = self._spawn_command("postgres", "postgres", command, without_password(url), None)
        self._wait_until(postgres.accepts_connections(folder.bin_dir, port), [server], "pg_isready")
        postgres.create_database(folder.bin_dir, port, POSTGRES_DATABASE)
        logger.info(
            "started a throw-away PostgreSQL %s (pid %d, data in %s, deleted at stop)",
            without_password(url),
            server.pid,
            folder.data,
        )
        return url

    def _refuse_if_running(self, run_dir: Path) -> None:
        try:
            previous = Manifest.read(run_dir)
        except (OSError, ValueError, TypeError):
            return
        if previous.launcher_pid != os.getpid() and pid_alive(previous.launcher_pid):
            raise ClusterError(
                f"a cluster from {run_dir} is already running (launcher pid "
                f"{previous.launcher_pid}): stop it first, or use another --run-dir"
            )

    def _spawn(
        self,
        role: str,
        node_id: str,
        args: list[str],
        url: str,
        health_url: str | None,
        env: Mapping[str, str],
        *,
        log_name: str | None = None,
    ) -> Child:
        self._check_stop()
        assert self._manifest is not None
        run_dir = Path(self._manifest.run_dir)
        # Its own session: a Ctrl-C in the terminal reaches only the launcher, which
        # then stops the children in order; and it dies with the launcher (Linux).
        process = spawn(
            Command(
                args,
                run_dir / (log_name or f"{node_id}.log"),
                name=f"{role} {node_id}",
                env=env,
                cwd=run_dir,
                new_session=True,
                die_with_parent=True,
            ),
            append=True,
        )
        return self._add_child(role, node_id, process, url, health_url)

    def _spawn_command(
        self, role: str, node_id: str, command: Command, url: str, health_url: str | None
    ) -> Child:
        self._check_stop()
        return self._add_child(role, node_id, spawn(command, append=True), url, health_url)

    def _add_child(
        self,
        role: str,
        node_id: str,
        process: Process,
        url: str,
        health_url: str | None,
        *,
        restartable: bool = True,
    ) -> Child:
        child = Child(role, node_id, url, health_url, process, restartable=restartable)
        self.children.append(child)
        self._write_manifest()
        return child

    def _wait_healthy(self, pending: list[Child]) -> None:
        probes = [http_ok(child.health_url) for child in pending if child.health_url]
        self._wait_until(all_of(probes), pending, "GET /health")

    def _wait_until(self, ready: HealthCheck, watched: list[Child], what: str) -> None:
        wait_ready(
            ready,
            [child.process for child in watched],
            what,
            self.spec.startup_timeout,
            interval=PROBE_INTERVAL_SECONDS,
            on_tick=self._check_stop,
        )

    # -- running

    def _announce(self, elapsed: float) -> None:
        assert self._manifest is not None
        ws_url = self._manifest.url.replace("http://", "ws://", 1) + "/ws/chat"
        logger.info("cluster ready in %.1fs", elapsed)
        print(
            f"chatrelay cluster ready in {elapsed:.1f}s: {self._manifest.url}  "
            f"(WebSocket {ws_url}, balancing {self.spec.balancing.value})\n"
            f"redis: {self._redis}\n"
            f"database: {self._database}\n"
            f"{process_table(self._manifest.processes)}\n"
            f"manifest {Path(self._manifest.run_dir) / 'cluster.json'}; Ctrl-C stops everything",
            flush=True,
        )

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            for child in self.children:
                code = child.process.exit_code()
                if code is not None and not child.reported_exit:
                    child.reported_exit = True
                    logger.error(
                        "%s (pid %d) exited unexpectedly with %s; not restarted%s."
                        " The end of %s:\n%s",
                        child.process.name,
                        child.pid,
                        code,
                        " (SIGUSR1 restarts it)" if child.restartable else NOT_RESTARTED,
                        child.process.log_path,
                        child.process.log_tail(),
                    )
            if self._restart.is_set():
                self._restart.clear()
                logger.info("SIGUSR1: restarting the nodes that ended")
                self._restart_dead()
            self._stopping.wait(SUPERVISE_INTERVAL_SECONDS)

    def _restart_dead(self) -> None:
        """Start again every child that ended, each on its old port (SIGUSR1)."""
        for index, child in enumerate(self.children):
            if child.process.exit_code() is None:
                continue
            if not child.restartable:
                logger.warning("%s %s stays dead%s", child.role, child.node_id, NOT_RESTARTED)
                continue
            again = child.restarted()
            self.children[index] = again
            logger.warning(
                "restarted %s %s: pid %d (was %d)", child.role, child.node_id, again.pid, child.pid
            )
        self._write_manifest()

    # -- stopping

    def _stop_all(self) -> None:
        try:
            self._stop_children()
        finally:
            if self._postgres_root is not None:
                shutil.rmtree(self._postgres_root, ignore_errors=True)

    def _stop_children(self) -> None:
        if not self.children:
            return
        logger.info("stopping the cluster")
        tiers = ("nginx", "gateway", "worker", "postgres", "redis")
        for role in tiers:
            stop_all(
                [c.process for c in self.children if c.role == role],
                self.spec.grace,
                hurry=self._hurry.is_set,
            )
        stop_all([c.process for c in self.children if c.role not in tiers], self.spec.grace)
        if self._manifest is not None:
            self._manifest.ready = False
            self._manifest.stopped_at = time.time()
            self._write_manifest()
        logger.info("cluster stopped")

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            raise _StopRequested

    @contextmanager
    def _signals(self) -> Iterator[None]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                logger.warning("second %s: killing without grace", signal.Signals(signum).name)
                self._hurry.set()
            else:
                logger.info("%s received: stopping", signal.Signals(signum).name)
            self._stopping.set()

        def on_restart(signum: int, frame: FrameType | None) -> None:
            self._restart.set()  # the supervisor acts on it within its next tick

        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {signum: signal.signal(signum, on_signal) for signum in handled}
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_restart)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _write_manifest(self) -> None:
        if self._manifest is None:
            return
        records: list[ProcessRecord] = [child.record() for child in self.children]
        if redis_url := self.environ.get("REDIS_URL"):
            records.insert(0, ProcessRecord("redis", "redis", None, without_password(redis_url)))
        self._manifest.processes = records
        self._manifest.write(Path(self._manifest.run_dir))


def run_cluster(spec: ClusterSpec) -> int:
    """Run a local cluster until a signal stops it; the process exit code."""
    return Launcher(spec).run()
