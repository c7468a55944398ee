"""The one way to run a throw-away PostgreSQL server (``cluster up``, test fixtures, bench).

:func:`init_postgres` runs ``initdb`` into a fresh folder; :func:`postgres_command`
is the server's command line (a free loopback port, its unix socket in that
folder, durability off: the data is thrown away); :func:`start_postgres`
starts it and waits for ``pg_isready``; :func:`running_postgres` does all of
that in a temporary folder and stops the server by pid and deletes the folder
when the block ends. Each user asks the server for a database of its own
(:meth:`PostgresServer.create_database`).

PostgreSQL refuses to run as root. As root, the server runs as an
unprivileged system user (``postgres``, created by the Debian package, else
``nobody``) and the folder is handed to that user. The folder is made
directly under the system temp dir (a private folder such as pytest's
``tmp_path`` or a home directory is out of that user's reach) and kept short
(a unix socket path must fit in ~100 bytes).
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chatrelay.exceptions import MissingBinary
from chatrelay.harness.processes import LOOPBACK, Command, Process, free_port, spawn
from chatrelay.harness.readiness import HealthCheck, wait_ready

DEBIAN_PACKAGE = "postgresql"
# Debian installs each major version side by side; the newest one wins.
BIN_GLOB = "/usr/lib/postgresql/*/bin"
# Unprivileged users to run the server as when we are root, in order of preference.
SERVER_USERS = ("postgres", "nobody")
SUPERUSER = "postgres"
# Throw-away data: durability settings only cost time here.
SERVER_SETTINGS: Mapping[str, str] = {
    "listen_addresses": LOOPBACK,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Every store opens a pool per process (and the test suites open many
    # stores at once): room above the default of 100.
    "max_connections": "200",
}
# initdb writes a whole cluster; on a loaded machine it takes several seconds.
INITDB_TIMEOUT_SECONDS = 120.0
# From start to accepting connections (crash recovery is never needed: fresh data).
START_TIMEOUT_SECONDS = 60.0
# Fast shutdown (SIGINT) ends sessions at once; past this the server is killed.
STOP_TIMEOUT_SECONDS = 30.0
# One ``createdb`` round trip, including copying the template database.
CREATEDB_TIMEOUT_SECONDS = 30.0


class PostgresNotInstalled(MissingBinary):
    """The PostgreSQL server binaries are not on this machine."""

    def __init__(self) -> None:
        super().__init__(f"{BIN_GLOB}/initdb and postgres", DEBIAN_PACKAGE)


def find_bin_dir() -> Path:
    """The ``bin`` folder of the newest installed PostgreSQL; raise if there is none."""
    candidates = [
        Path(path)
        for path in Path("/").glob(BIN_GLOB.lstrip("/"))
        if (Path(path) / "initdb").is_file() and (Path(path) / "postgres").is_file()
    ]
    if not candidates:
        raise PostgresNotInstalled()

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    return max(candidates, key=version)


def postgres_installed() -> bool:
    """Whether :func:`find_bin_dir` finds a server."""
    try:
        find_bin_dir()
    except PostgresNotInstalled:
        return False
    return True


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"running as root and none of the users {SERVER_USERS} exists")


def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _environment(home: Path | None) -> dict[str, str]:
    # Only what the binaries need: no PG* variables from the caller's shell.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if home is not None:
        env["HOME"] = str(home)
    return env


def _run(
    args: list[str], timeout: float, user: pwd.struct_passwd | None = None, cwd: Path | None = None
) -> None:
    """Run one command to completion; raise with its output if it fails."""
    result = subprocess.run(
        args,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=_environment(cwd),
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
        extra_groups=None if user is None else [],
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise RuntimeError(f"{' '.join(args)} exited with {result.returncode}:\n{output}")


@dataclass(frozen=True)
class PostgresFolder:
    """An initialized data folder: ``root/data``, the socket in ``root/socket``."""

    bin_dir: Path
    root: Path
    user: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"


def new_root() -> Path:
    """A fresh, short folder under the system temp dir (see the module docstring)."""
    return Path(tempfile.mkdtemp(prefix="chatrelay-pg-"))


def init_postgres(root: Path, timeout: float = INITDB_TIMEOUT_SECONDS) -> PostgresFolder:
    """``initdb`` into ``root/data`` (``root`` exists and is empty); raises
    :class:`PostgresNotInstalled` naming the Debian package when the binaries are missing."""
    folder = PostgresFolder(find_bin_dir(), root, _server_user())
    folder.socket_dir.mkdir()
    if folder.user is not None:
        _chown_tree(root, folder.user)
    _run(
        [
            str(folder.bin_dir / "initdb"),
            "-D",
            str(folder.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        timeout=timeout,
        user=folder.user,
        cwd=root,
    )
    return folder


def postgres_command(
    folder: PostgresFolder,
    port: int,
    settings: Mapping[str, str] = SERVER_SETTINGS,
    *,
    new_session: bool = False,
    die_with_parent: bool = False,
) -> Command:
    """The server on loopback ``port``; SIGINT (fast shutdown) stops it."""
    options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    user = folder.user
    return Command(
        [
            str(folder.bin_dir / "postgres"),
            "-D",
            str(folder.data),
            "-p",
            str(port),
            "-k",
            str(folder.socket_dir),
            *options,
        ],
        folder.log_path,
        name="postgres",
        cwd=folder.root,
        env=_environment(folder.root),
        port=port,
        # SIGINT is PostgreSQL's fast shutdown: sessions end at once.
        stop_signal=signal.SIGINT,
        new_session=new_session,
        die_with_parent=die_with_parent,
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
    )


def accepts_connections(bin_dir: Path, port: int) -> HealthCheck:
    """A check: ``pg_isready`` says the server on ``port`` accepts connections."""
    isready = [str(bin_dir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-U", SUPERUSER]

    def check() -> bool:
        try:
            return subprocess.run(isready, timeout=10, env=_environment(None)).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    return check


def database_url(port: int, database: str = "postgres") -> str:
    """A SQLAlchemy URL for ``database`` on loopback ``port`` with the asyncpg driver."""
    return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{port}/{database}"


def create_database(
    bin_dir: Path, port: int, name: str, timeout: float = CREATEDB_TIMEOUT_SECONDS
) -> str:
    """Create the empty database ``name``; return its SQLAlchemy URL."""
    createdb = [str(bin_dir / "createdb"), "-h", LOOPBACK, "-p", str(port), "-U", SUPERUSER, name]
    _run(createdb, timeout=timeout)
    return database_url(port, name)


@dataclass
class PostgresServer:
    """A running PostgreSQL server that trusts loopback connections as ``postgres``."""

    folder: PostgresFolder
    port: int
    process: Process
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def root(self) -> Path:
        return self.folder.root

    def log(self) -> str:
        """The server's own log, for failure messages."""
        return self.process.log()

    def url(self, database: str = "postgres") -> str:
        return database_url(self.port, database)

    def create_database(
        self, prefix: str = "test", timeout: float = CREATEDB_TIMEOUT_SECONDS
    ) -> str:
        """Create a new, empty database and return its SQLAlchemy URL."""
        return create_database(
            self.folder.bin_dir, self.port, f"{prefix}_{next(self._names)}", timeout
        )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """Stop the server (fast shutdown, then kill) by its pid; return its exit code."""
        return self.process.stop(timeout)


def start_postgres(
    folder: PostgresFolder, timeout: float = START_TIMEOUT_SECONDS
) -> PostgresServer:
    """Start the server of ``folder`` on a free port; return it once it accepts connections.

    Stops what it started before raising.
    """
    port = free_port()
    process = spawn(postgres_command(folder, port))
    try:
        wait_ready(accepts_connections(folder.bin_dir, port), [process], "pg_isready", timeout)
    except BaseException:
        process.stop(STOP_TIMEOUT_SECONDS)
        raise
    return PostgresServer(folder, port, process)


@contextmanager
def running_postgres(
    initdb_timeout: float = INITDB_TIMEOUT_SECONDS,
    start_timeout: float = START_TIMEOUT_SECONDS,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
) -> Iterator[PostgresServer]:
    """A fresh server in a temporary folder; stopped by pid and its files deleted on exit.

    Raises :class:`PostgresNotInstalled` naming the Debian package when the
    binaries are missing.
    """
    root = new_root()
    try:
        server = start_postgres(init_postgres(root, initdb_timeout), start_timeout)
        try:
            yield server
        finally:
            server.stop(stop_timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
