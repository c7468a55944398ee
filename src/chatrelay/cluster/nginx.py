"""nginx in front of the gateways: its configuration, rendered from ``nginx.conf.template``."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from enum import StrEnum
from importlib import resources
from pathlib import Path
from string import Template

TEMPLATE = "nginx.conf.template"


class Balancing(StrEnum):
    """How nginx picks a gateway for a client."""

    # Sticky by client address (IPv4: the first three octets).
    IP_HASH = "ip_hash"
    # Sticky by the ``session_id`` query parameter, on a consistent-hash ring:
    # every socket of one session lands on one gateway.
    CONSISTENT = "consistent"

    @property
    def directive(self) -> str:
        if self is Balancing.IP_HASH:
            return "ip_hash;"
        return "hash $arg_session_id consistent;"


class _NginxTemplate(Template):
    # nginx uses ``$`` for its own variables; ours are ``@name``.
    delimiter = "@"


def render(
    run_dir: Path, listen: str, gateways: list[str], balancing: Balancing = Balancing.IP_HASH
) -> str:
    """The nginx configuration for ``gateways`` (``host:port`` each), listening on ``listen``."""
    if not gateways:
        raise ValueError("nginx needs at least one gateway")
    servers = "\n".join(
        # max_fails=0: never mark a gateway down. A dead one refuses the connection at
        # once and nginx tries the next; marking it down instead made nginx answer
        # "no live upstreams" for whole seconds after a gateway restart (chaos.py).
        f"        server {address} max_fails=0;"
        for address in gateways
    )
    text = resources.files(__package__).joinpath(TEMPLATE).read_text()
    return _NginxTemplate(text).substitute(
        user_line=_user_line(),
        run_dir=str(run_dir.resolve()),
        listen=listen,
        balancing=balancing.directive,
        servers=servers,
    )


def _user_line() -> str:
    # nginx started by root switches its workers to ``nobody``, which then
    # cannot use the run folder; keep them as the current user. For anyone
    # else the directive is meaningless (nginx would warn), so it is left out.
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def command(binary: Path, run_dir: Path, config: Path) -> list[str]:
    """The command line that runs nginx in the foreground with ``config``."""
    run_dir = run_dir.resolve()
    # -e: the error log used before the configuration is read (else /var/log/nginx).
    error_log = run_dir / "nginx-error.log"
    return [str(binary), "-p", str(run_dir), "-c", str(config.resolve()), "-e", str(error_log)]


def check(binary: Path, run_dir: Path, config: Path) -> str | None:
    """``nginx -t`` on ``config``; None when valid, else nginx's complaint."""
    (run_dir / "nginx-temp").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [*command(binary, run_dir, config), "-t", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip()
