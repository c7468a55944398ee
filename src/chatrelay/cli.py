"""The ``chatrelay`` command: parses arguments and calls; nothing else lives here."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from chatrelay import logs, serving
from chatrelay.cluster.layout import Database
from chatrelay.cluster.nginx import Balancing
from chatrelay.config import Settings, internal_token_problem
from chatrelay.llm.factory import resolve_model_kind

# No locals in a crash report: they would print the settings, internal token included.
app = typer.Typer(
    help="chatrelay: a scalable, real-time AI chat service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
logger = logging.getLogger("chatrelay")

HostOption = Annotated[str | None, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on.")]


@app.callback()
def _commands() -> None:
    """chatrelay: a scalable, real-time AI chat service."""


def _settings(host: str | None, port: int | None) -> Settings:
    given = {"host": host, "port": port}
    return Settings(**{key: value for key, value in given.items() if value is not None})  # type: ignore[arg-type]


def _run(role: str, settings: Settings, details: str) -> None:
    """Configure logs, build the role's app, say what runs where, and serve until a signal."""
    from chatrelay.auth import exposed_dev_auth

    token = internal_token_problem(settings, role)
    refusals = [
        f"chatrelay {role}: refusing to start: {token}" if token else None,
        exposed_dev_auth(settings) if role != "worker" else None,
    ]
    if any(refusals):
        for refusal in filter(None, refusals):  # every one at once: fix them in one go
            typer.echo(refusal, err=True)
        raise typer.Exit(2)
    logs.configure(settings.log_level, settings.node_id, settings.log_format)
    from chatrelay import app_factory

    factories = {
        "serve": app_factory.create_all_in_one_app,
        "gateway": app_factory.create_gateway_app,
        "worker": app_factory.create_worker_app,
    }
    asgi = factories[role](settings)
    logger.info(
        "chatrelay %s %s on http://%s:%s (%s, pid %d)",
        role,
        settings.node_id,
        settings.host,
        settings.port,
        details,
        os.getpid(),
    )
    serving.run(asgi, settings, stop_listening_on_drain=role != "worker")


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Gateway and worker in one process: the laptop default (memory engine, SQLite)."""
    settings = _settings(host, port)
    engine = settings.resolved_engine_url.split("@")[-1]  # never log a password
    details = (
        f"engine {engine}, database {settings.database_url.split('@')[-1]}, "
        f"model {resolve_model_kind(settings)}"
    )
    _run("serve", settings, details)


@app.command()
def gateway(host: HostOption = None, port: PortOption = None) -> None:
    """A gateway node: WebSockets and REST; generations on the workers of AI_SERVICE_URLS."""
    settings = _settings(host, port)
    _run("gateway", settings, f"workers {','.join(settings.ai_service_urls)}")


@app.command()
def worker(host: HostOption = None, port: PortOption = None) -> None:
    """A worker node: POST /chat, /cancel; runs generations (default port 8000)."""
    default_port = int(os.environ.get("CHATRELAY_PORT", "8000"))
    settings = _settings(host, port if port is not None else default_port)
    _run("worker", settings, f"model {resolve_model_kind(settings)}")


cluster_app = typer.Typer(
    help="A local cluster: redis-server, nginx, N gateways and M workers.", no_args_is_help=True
)
app.add_typer(cluster_app, name="cluster")
RunDirOption = Annotated[
    Path, typer.Option("--run-dir", help="Folder for cluster.json, logs, nginx.conf, SQLite.")
]


@cluster_app.command("up")
def cluster_up(
    gateways: Annotated[int, typer.Option(min=1, help="Gateway nodes.")] = 3,
    workers: Annotated[int, typer.Option(min=1, help="Worker nodes.")] = 3,
    port: Annotated[int, typer.Option(help="Port nginx listens on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address nginx listens on.")] = "127.0.0.1",
    lb: Annotated[Balancing, typer.Option(help="Sticky by client address or by session.")] = (
        Balancing.IP_HASH
    ),
    run_dir: RunDirOption = Path("run/cluster"),
    grace: Annotated[float, typer.Option(help="Seconds each tier gets to stop.")] = 12.0,
    database: Annotated[
        Database,
        typer.Option(
            help="auto: a throw-away PostgreSQL when installed, else SQLite (warned)."
            " CHATRELAY_DATABASE_URL overrides it."
        ),
    ] = Database.AUTO,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Start a Kafka broker for the event log too.")
    ] = False,
    redis_shards: Annotated[
        int | None,
        typer.Option(
            "--redis-shards",
            min=1,
            help="A Redis Cluster of N masters and N replicas instead of one redis-server.",
        ),
    ] = None,
) -> None:
    """Start the cluster, print its URL, stop it all on Ctrl-C or SIGTERM."""
    logs.configure(os.environ.get("CHATRELAY_LOG_LEVEL", "info"), "cluster")
    from chatrelay.cluster.launcher import ClusterSpec, run_cluster

    spec = ClusterSpec(
        gateways,
        workers,
        port,
        host,
        lb,
        run_dir,
        grace,
        database=database,
        kafka=kafka,
        redis_shards=redis_shards or 0,
    )
    raise typer.Exit(run_cluster(spec))


@cluster_app.command("status")
def cluster_status(run_dir: RunDirOption = Path("run/cluster")) -> None:
    """Print cluster.json as a table with each process alive or dead (exit 1 if any is dead)."""
    from chatrelay.cluster.status import report

    text, code = report(run_dir)
    typer.echo(text)
    raise typer.Exit(code)


@cluster_app.command("down")
def cluster_down(
    run_dir: RunDirOption = Path("run/cluster"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every process to end.")] = (
        120.0
    ),
) -> None:
    """Stop the cluster of --run-dir (SIGTERM to its launcher) and wait until all of it ended."""
    from chatrelay.cluster.down import stop_cluster

    text, code = stop_cluster(run_dir, timeout)
    typer.echo(text)
    raise typer.Exit(code)


users_app = typer.Typer(
    help="Accounts of CHATRELAY_AUTH_MODE=accounts (in CHATRELAY_DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
NameArgument = Annotated[str, typer.Argument(help="The user name (their user id).")]


def _read_password() -> str:
    """The first line of stdin when it is piped, else a hidden prompt asked twice."""
    import sys

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _users(command: Callable[[], str]) -> None:
    from chatrelay.auth.users import UserCommandError

    try:
        typer.echo(command())
    except UserCommandError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@users_app.command("add")
def users_add(
    name: NameArgument,
    admin: Annotated[bool, typer.Option("--admin", help="An administrator.")] = False,
) -> None:
    """Create a user; the password comes from stdin or a prompt."""
    from chatrelay.auth import users

    password = _read_password()
    _users(lambda: users.add_user(_settings(None, None), name, password, admin=admin))


@users_app.command("list")
def users_list() -> None:
    """List the users."""
    from chatrelay.auth import users

    _users(lambda: users.list_users(_settings(None, None)))


@users_app.command("passwd")
def users_passwd(name: NameArgument) -> None:
    """Change a user's password (from stdin or a prompt)."""
    from chatrelay.auth import users

    password = _read_password()
    _users(lambda: users.change_password(_settings(None, None), name, password))


@users_app.command("remove")
def users_remove(name: NameArgument) -> None:
    """Delete a user (their conversations stay)."""
    from chatrelay.auth import users

    _users(lambda: users.remove_user(_settings(None, None), name))


events_app = typer.Typer(help="The event log on Kafka (docs/events.md).", no_args_is_help=True)
app.add_typer(events_app, name="events")
BootstrapOption = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap servers [default: CHATRELAY_KAFKA_BOOTSTRAP]."),
]
TopicOption = Annotated[
    str | None, typer.Option(help="The topic [default: CHATRELAY_KAFKA_TOPIC or chatrelay.events].")
]


def _kafka(bootstrap: str | None, topic: str | None) -> tuple[str, str]:
    settings = _settings(None, None)
    chosen = bootstrap or settings.kafka_bootstrap
    if not chosen:
        typer.echo("no Kafka: give --bootstrap or set CHATRELAY_KAFKA_BOOTSTRAP", err=True)
        raise typer.Exit(2)
    return chosen, topic or settings.kafka_topic


@events_app.command("tail")
def events_tail(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start with the events already there.")
    ] = False,
    session: Annotated[str | None, typer.Option(help="Only this session's events.")] = None,
    bootstrap: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Print events as they arrive, one JSON object a line, until Ctrl-C."""
    from chatrelay.events.commands import tail

    servers, name = _kafka(bootstrap, topic)
    try:
        tail(servers, name, from_beginning=from_beginning, session=session, echo=typer.echo)
    except KeyboardInterrupt:
        pass


@events_app.command("rebuild")
def events_rebuild(
    database_url: Annotated[str, typer.Option(help="The EMPTY store to rebuild into.")],
    bootstrap: BootstrapOption = None,
    topic: TopicOption = None,
) -> None:
    """Rebuild sessions and messages from the whole topic into an empty store."""
    from chatrelay.events.commands import rebuild_store
    from chatrelay.events.consumer import TopicError
    from chatrelay.events.rebuild import RebuildError

    servers, name = _kafka(bootstrap, topic)
    try:
        stats = rebuild_store(servers, name, database_url)
    except (RebuildError, TopicError) as exc:
        typer.echo(f"chatrelay events rebuild: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"rebuilt {stats.sessions} sessions, {stats.messages} messages from {stats.applied} "
        f"events ({stats.duplicates} duplicates skipped)"
    )


@app.command()
def chat(
    url: Annotated[str, typer.Argument(help="The WebSocket URL, e.g. ws://127.0.0.1:8080/ws/chat")],
    session: Annotated[str | None, typer.Option(help="Session id (a new one if omitted).")] = None,
    user: Annotated[str | None, typer.Option(help="User id (dev auth mode).")] = None,
) -> None:
    """Chat in the terminal; answers stream, a dropped connection resumes."""
    import asyncio

    from chatrelay.terminal import chat as run_chat

    asyncio.run(run_chat(url, session, user))


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Where to write it.")] = Path(
        "docs/protocol.schema.json"
    ),
) -> None:
    """Write the wire protocol (frames and REST bodies) as JSON Schema."""
    from chatrelay import wire_schema

    out.write_text(wire_schema.render(), encoding="utf-8")
    typer.echo(f"wrote {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
