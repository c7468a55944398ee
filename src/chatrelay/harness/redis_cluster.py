"""A real Redis Cluster from Debian's ``redis-server``: N masters, each with its replicas.

Every node is a ``redis-server --cluster-enabled yes`` on a free loopback port
(and that port + 10000 free for the cluster bus); ``redis-cli --cluster
create`` joins them and hands out the 16,384 slots (it refuses fewer than 3
masters: those are joined by hand, ``CLUSTER ADDSLOTSRANGE``, ``MEET``,
``REPLICATE``); :func:`start_redis_cluster` returns once every node reports
``cluster_state:ok``. A short node timeout lets
a replica take over a killed master in a few seconds, and
``cluster-require-full-coverage no`` keeps the other shards serving meanwhile
(Redis's default refuses every command while any slot is unserved). Stopped by pid like every
other child (:meth:`RedisCluster.stop`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from chatrelay.exceptions import ProcessNotReady
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
from chatrelay.harness.readiness import all_of, wait_ready
from chatrelay.harness.redis import redis_command, redis_pong, redis_reply

#: Redis's cluster bus listens on the client port plus this.
BUS_PORT_OFFSET = 10000
#: Milliseconds before a silent master is failed over (Redis's default is 15,000).
NODE_TIMEOUT_MS = 2000
#: ``redis-cli --cluster create`` assigns slots and waits for the nodes to agree.
CREATE_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
HIGHEST_PORT = 65535
#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: ``redis-cli --cluster create`` refuses fewer masters; fewer are joined by hand. (With
#: fewer than 3 no replica can take over a dead master: that needs a majority of masters.)
CLI_MIN_MASTERS = 3


def cluster_port(avoid: Collection[int] = ()) -> int:
    """A free loopback port whose cluster bus port (+10000) is free as well,
    neither of them in ``avoid`` (ports promised to processes not started yet)."""
    while True:
        port = free_port()
        bus = port + BUS_PORT_OFFSET
        if port in avoid or bus in avoid:
            continue
        if bus <= HIGHEST_PORT and port_free(LOOPBACK, bus):
            return port


def info_fields(port: int, *command: str) -> dict[str, str]:
    """An INFO-style reply (``CLUSTER INFO``, ``INFO replication``) of the node on ``port``
    as a dict (empty when it does not answer)."""
    try:
        reply = redis_reply(port, *command)
    except OSError:
        return {}
    # A bulk string: "$<length>\r\n" then "key:value\r\n" lines.
    lines = reply.decode(errors="replace").splitlines()[1:]
    return dict(line.split(":", 1) for line in lines if ":" in line)


@dataclass
class ClusterNode:
    """One ``redis-server`` of the cluster."""

    process: Process
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def role(self) -> str:
        """``master`` or ``slave``, as the node itself says now ("" when it does not answer)."""
        try:
            reply = redis_reply(self.port, "ROLE")
        except OSError:
            return ""
        # ROLE is an array: "*3\r\n$6\r\nmaster\r\n..." (the first bulk string is the role).
        lines = reply.decode(errors="replace").splitlines()
        return lines[2] if len(lines) > 2 else ""

    def replicating(self) -> bool:
        """A master: true; a replica: its link to its master is up (the first sync is done)."""
        info = info_fields(self.port, "INFO", "replication")
        return info.get("role") == "master" or info.get("master_link_status") == "up"


@dataclass
class RedisCluster:
    """A running cluster: its nodes in creation order (masters first, then replicas)."""

    nodes: list[ClusterNode]
    masters: int
    directory: Path

    @property
    def url(self) -> str:
        """``redis-cluster://`` with every node as a seed (chatrelay's engine URL)."""
        return "redis-cluster://" + ",".join(node.address for node in self.nodes)

    @property
    def processes(self) -> list[Process]:
        return [node.process for node in self.nodes]

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process.exit_code() is None]

    def healthy(self) -> bool:
        """Every running node reports ``cluster_state:ok`` with all 16,384 slots served,
        by as many running masters as the cluster was made with (after a master dies,
        its peers still say ``ok`` until they mark it failed and its replica takes over),
        and every replica's link to its master up.
        """
        running = self.running()
        return sum(node.role() == "master" for node in running) == self.masters and all(
            (info := info_fields(node.port, "CLUSTER", "INFO")).get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == "16384"
            and node.replicating()
            for node in running
        )

    def wait_healthy(self, timeout: float) -> None:
        """Wait until :meth:`healthy` (after a start, or after a failover)."""
        wait_ready(self.healthy, [], "CLUSTER INFO cluster_state:ok", timeout)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        stop_all(self.processes, grace)


def _create_with_cli(cli: Path, nodes: list[ClusterNode], replicas: int, timeout: float) -> None:
    """``redis-cli --cluster create``: the first ``masters`` addresses become masters, the
    rest their replicas."""
    create = [str(cli), "--cluster", "create", *(node.address for node in nodes)]
    create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    done = subprocess.run(create, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ProcessNotReady(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")


def _command(node: ClusterNode, *args: str) -> str:
    """One command to ``node``; its reply's text, raising on an error reply."""
    reply = redis_reply(node.port, *args).decode(errors="replace")
    if reply.startswith("-"):
        raise ProcessNotReady(f"{node.address} refused {' '.join(args)}: {reply.strip()}")
    return reply.splitlines()[-1]  # "+OK", or the bulk string's text after "$<length>"


def _join_by_hand(nodes: list[ClusterNode], masters: int, timeout: float) -> None:
    """What ``redis-cli --cluster create`` does, for the 1 or 2 masters it refuses: the
    masters share the slots, every node meets the first, each replica follows a master."""
    for index, node in enumerate(nodes[:masters]):
        first = index * SLOTS // masters
        last = (index + 1) * SLOTS // masters - 1
        _command(node, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
    for node in nodes[1:]:
        _command(node, "CLUSTER", "MEET", LOOPBACK, str(nodes[0].port))

    def all_met() -> bool:
        known = str(len(nodes))
        return all(
            info_fields(node.port, "CLUSTER", "INFO").get("cluster_known_nodes") == known
            for node in nodes
        )

    wait_ready(all_met, [node.process for node in nodes], "CLUSTER MEET", timeout)
    ids = [_command(node, "CLUSTER", "MYID") for node in nodes[:masters]]
    for index, node in enumerate(nodes[masters:]):
        _command(node, "CLUSTER", "REPLICATE", ids[index % masters])


def start_redis_cluster(
    directory: Path,
    masters: int,
    replicas: int = 1,
    timeout: float = CREATE_TIMEOUT_SECONDS,
    *,
    detached: bool = False,
    avoid: Collection[int] = (),
) -> RedisCluster:
    """Start ``masters`` x (1 + ``replicas``) nodes on loopback and join them into a cluster.

    ``detached`` (``cluster up``): each node in its own session, so a terminal's
    Ctrl-C reaches only the launcher, and dying with it. ``avoid``: ports (and
    bus ports) the caller has promised to others.

    Raises :class:`MissingBinary` when ``redis-server`` or ``redis-cli`` is not
    installed and :class:`ProcessNotReady` when the cluster does not form;
    stops what it started before raising.
    """
    server = find_program("redis-server", "redis-server")
    cli = find_program("redis-cli", "redis-tools")
    directory.mkdir(parents=True, exist_ok=True)
    nodes: list[ClusterNode] = []
    try:
        taken = set(avoid)
        for _ in range(masters * (1 + replicas)):
            port = cluster_port(taken)
            taken.update((port, port + BUS_PORT_OFFSET))
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A shard without a master refuses its own slots only; the others serve on.
                "--cluster-require-full-coverage",
                "no",
                # A replica's first sync starts at once, not after Redis's 5 s wait for others.
                "--repl-diskless-sync-delay",
                "0",
            )
            command = Command(
                redis_command(server, port, directory, *extra),
                directory / f"redis-{port}.log",
                name=f"redis-{port}",
                port=port,
                new_session=detached,
                die_with_parent=detached,
            )
            nodes.append(ClusterNode(spawn(command), port))
        processes = [node.process for node in nodes]
        wait_ready(all_of(redis_pong(node.port) for node in nodes), processes, "PING", timeout)
        if masters >= CLI_MIN_MASTERS:
            _create_with_cli(cli, nodes, replicas, timeout)
        else:
            _join_by_hand(nodes, masters, timeout)
        cluster = RedisCluster(nodes, masters, directory)
        cluster.wait_healthy(timeout)
        return cluster
    except BaseException:
        stop_all([node.process for node in nodes], STOP_GRACE_SECONDS)
        raise
