"""``tinycompile db``: a local PostgreSQL server for a study that workers on several machines fill.

``db start`` makes the server's folder on first use (``initdb``, a generated password), starts the server unless it
is running, creates the database unless it exists, and prints the ``--storage`` URL; running it again changes
nothing and prints the same URL. ``db stop`` stops it. PostgreSQL itself comes from Debian (``scripts/setup.sh``).

The folder holds ``pgdata/`` (the cluster, its ``server.log``) and ``password`` (readable by its owner only).
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user, which must be able to reach
the folder.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from tinycompile.errors import UserError

USER = "tinycompile"  # the server's superuser, and the database's name
DEFAULT_PORT = 5432
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ANY = ("*", "0.0.0.0", "::")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``db`` subcommand (``start``, ``stop``)."""
    p = sub.add_parser("db", help="a local PostgreSQL server for studies shared by several machines")
    actions = p.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="start the server (creating it the first time) and print the storage URL")
    start.add_argument("--data", type=Path, default=default_folder(), help=f"the server's folder (default {default_folder()})")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    start.add_argument("--listen", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; '*' for workers on other machines)")
    start.set_defaults(func=run_start)
    stop = actions.add_parser("stop", help="stop the server")
    stop.add_argument("--data", type=Path, default=default_folder(), help=f"the server's folder (default {default_folder()})")
    stop.set_defaults(func=run_stop)


def default_folder() -> Path:
    """Where the server lives unless ``--data`` says: a system folder for root (the ``postgres`` user must reach it),
    the user's data folder otherwise."""
    if os.geteuid() == 0:
        return Path("/var/lib/tinycompile/postgres")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tinycompile" / "postgres"


def run_start(args: argparse.Namespace) -> int:
    """Start (and on first use create) the server and its database; print the storage URL last."""
    folder = args.data.resolve()
    pgdata = folder / "pgdata"
    running = _running(pgdata)
    if running is not None and running != (args.port, args.listen):
        raise UserError(f"the server of {folder} is already running on port {running[0]}, listening on {running[1]}, "
                        f"not {args.port} and {args.listen}; stop it first (tinycompile db stop --data {folder})")
    if running is None:
        _refuse_port_in_use(args.listen, args.port)
    if not (pgdata / "PG_VERSION").is_file():
        _create(folder, pgdata)
    if args.listen not in LOOPBACK:
        _allow_remote(pgdata)
    if running is not None:
        print(f"PostgreSQL of {folder} is already running on port {args.port}")
    else:
        # TCP only: Unix sockets would need a directory the server can write, and workers connect by TCP anyway.
        options = f"-p {args.port} -c listen_addresses='{args.listen}' -c unix_socket_directories=''"
        _pg("pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-o", options, "-w", "-t", "60", "start",
            what=f"start the server (see {pgdata / 'server.log'})")
        print(f"PostgreSQL of {folder} started on port {args.port}, listening on {args.listen}")
    password = (folder / "password").read_text().strip()
    _create_database(args.port, password)
    # Listening on every interface: name this host; workers elsewhere may need its address in place of the name.
    host = "127.0.0.1" if args.listen in LOOPBACK else (socket.gethostname() if args.listen in ANY else args.listen)
    print(f"postgresql://{USER}:{password}@{host}:{args.port}/{USER}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop the server if it runs."""
    pgdata = args.data.resolve() / "pgdata"
    if _running(pgdata) is None:
        print(f"no server of {args.data} is running")
        return 0
    _pg("pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop", what="stop the server")
    print(f"PostgreSQL of {args.data} stopped")
    return 0


def _bindir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off PATH, under /usr/lib/postgresql/<v>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise UserError("PostgreSQL is not installed: run scripts/setup.sh (or install Debian's postgresql)")


def _as_server_user() -> list[str]:
    """The command prefix that runs a PostgreSQL program as a user it accepts (not root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg(program: str, *args: str, what: str) -> None:
    """Run a PostgreSQL program as the server's user; its last complaint becomes a one-line UserError."""
    done = subprocess.run([*_as_server_user(), str(_bindir() / program), *args], capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"cannot {what}: {lines[-1] if lines else f'{program} exited with {done.returncode}'}")


def _create(folder: Path, pgdata: Path) -> None:
    """``initdb`` a fresh cluster whose superuser logs in by password over TCP, with a generated password."""
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "password"
    if not password_file.is_file():
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        password_file.chmod(0o600)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    pwfile = folder / ".initdb-password"  # initdb reads it as the server's user; removed right after
    shutil.copyfile(password_file, pwfile)
    if os.geteuid() == 0:
        server = pwd.getpwnam("postgres")
        for path in (pgdata, pwfile):
            os.chown(path, server.pw_uid, server.pw_gid)
    try:
        _pg("initdb", "-D", str(pgdata), "-U", USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256", "--encoding=UTF8",
            what=f"create the server in {pgdata} (the {'postgres user' if os.geteuid() == 0 else 'user'} must be able "
                 "to reach that folder)")
    finally:
        pwfile.unlink(missing_ok=True)


def _allow_remote(pgdata: Path) -> None:
    """Let other machines in, by password (initdb admits loopback only)."""
    hba = pgdata / "pg_hba.conf"
    lines = ["host all all 0.0.0.0/0 scram-sha-256", "host all all ::/0 scram-sha-256"]
    text = hba.read_text()
    missing = [line for line in lines if line not in text]
    if missing:
        hba.write_text(text.rstrip("\n") + "\n# tinycompile db start --listen: workers on other machines\n"
                       + "\n".join(missing) + "\n")


def _running(pgdata: Path) -> tuple[int, str] | None:
    """The port and listen address of the server running on ``pgdata``, or ``None`` if none runs."""
    if not (pgdata / "PG_VERSION").is_file():
        return None
    status = subprocess.run([*_as_server_user(), str(_bindir() / "pg_ctl"), "-D", str(pgdata), "status"],
                            capture_output=True, text=True)
    if status.returncode != 0:
        return None
    pid_lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return int(pid_lines[3]), pid_lines[5]  # postmaster.pid: pid, data dir, start time, port, socket dir, listen


def _refuse_port_in_use(listen: str, port: int) -> None:
    """A one-line refusal when something already answers on the port (pg_ctl would only say the start failed)."""
    host = "127.0.0.1" if listen in (*ANY, "localhost") else listen
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(1)
        if s.connect_ex((host, port)) == 0:
            raise UserError(f"port {port} is in use (another server?); pick a free one with --port")


def _create_database(port: int, password: str) -> None:
    """Create the study database unless it exists."""
    try:
        import psycopg  # the driver the workers' storage URL uses too
    except ImportError:
        raise UserError("the PostgreSQL driver is missing: pip install 'psycopg[binary]' (scripts/setup.sh does)") from None

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres",
                             autocommit=True, connect_timeout=30) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (USER,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{USER}"')
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot create the database on port {port}: {first}") from None
