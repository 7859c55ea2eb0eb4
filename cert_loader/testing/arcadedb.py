"""Start and stop a real ArcadeDB Bolt server, the Neo4j stand-in for tests and demos (DESIGN.md section 9)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# The database answers about 0.5 s after the Bolt port opens; a cold JVM needs a few seconds (section 9).
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
LOG_NAME = "arcadedb.log"
PID_NAME = "arcadedb.pid"


def _package_dir() -> Path:
    try:
        import arcadedb_embedded
    except ImportError as exc:  # pragma: no cover - dev dependency missing
        raise RuntimeError(
            "arcadedb-embedded is not installed; pip install 'cert_loader[dev]'"
        ) from exc
    return Path(arcadedb_embedded.__file__).resolve().parent


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (held open together, so the two never coincide)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _restore_signals() -> None:
    # Background processes here may inherit ignored SIGTERM/SIGINT (section 9): reset them in the child.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_server(pid: int, root_dir: Path) -> bool:
    """Guard against a reused pid: the process must be the ArcadeDB server rooted in ``root_dir``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return b"com.arcadedb.server.ArcadeDBServer" in cmdline and (
        f"-Darcadedb.server.rootPath={root_dir}".encode() in cmdline
    )


def _kill_group(pid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it after a grace period, and reap it."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not _pid_alive(pid):
                return
            time.sleep(0.1)
    if proc is not None:
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class ArcadeServer:
    """A running ArcadeDB server with its Bolt endpoint; ``stop()`` kills its process group."""

    pid: int
    bolt_uri: str
    http_port: int
    password: str = field(repr=False)
    database: str
    root_dir: Path
    user: str = "root"
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """The ``CERT_SP_*`` variables that point the loader at this server (DESIGN.md section 4)."""
        return {
            "CERT_SP_URI": self.bolt_uri,
            "CERT_SP_USER": self.user,
            "CERT_SP_PASSWORD": self.password,
            "CERT_SP_DATABASE": self.database,
        }

    def stop(self) -> None:
        if self._stopped:
            return
        _kill_group(self.pid, self._proc)
        self._stopped = True


def _http_ready(http_port: int, database: str, password: str) -> bool:
    body = json.dumps({"language": "cypher", "command": "RETURN 1"}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/v1/query/{database}", data=body, method="POST"
    )
    token = base64.b64encode(f"root:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _bolt_ready(bolt_uri: str, password: str, database: str) -> bool:
    import neo4j

    try:
        with neo4j.GraphDatabase.driver(bolt_uri, auth=("root", password)) as driver:
            driver.verify_connectivity()
            driver.execute_query("RETURN 1 AS one", database_=database)
        return True
    except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
        return False


def _server_command(root_dir: Path, password: str, database: str, bolt_port: int, http_port: int,
                    heap: str) -> list[str]:
    """The JVM command line of a development-mode server with the Bolt plugin, bound to 127.0.0.1."""
    pkg = _package_dir()
    return [
        str(pkg / "jre" / "bin" / "java"), f"-Xmx{heap}", "--add-modules", "jdk.incubator.vector",
        "-Darcadedb.server.mode=development",
        f"-Darcadedb.server.rootPath={root_dir}",
        f"-Darcadedb.server.databaseDirectory={root_dir / 'databases'}",
        f"-Darcadedb.server.rootPassword={password}",
        "-Darcadedb.server.httpIncomingHost=127.0.0.1",
        f"-Darcadedb.server.httpIncomingPort={http_port}",
        "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
        "-Darcadedb.bolt.host=127.0.0.1",
        f"-Darcadedb.bolt.port={bolt_port}",
        f"-Darcadedb.server.defaultDatabases={database}[root]",
        "-cp", str(pkg / "jars" / "*"),
        "com.arcadedb.server.ArcadeDBServer",
    ]


def start_arcadedb(
    root_dir: Path,
    *,
    password: str,
    database: str = "cert",
    bolt_port: int | None = None,
    http_port: int | None = None,
    heap: str = "2g",
) -> ArcadeServer:
    """Launch ArcadeDB as a plain JVM (DESIGN.md section 9) and wait until HTTP and Bolt answer."""
    if len(password) < 8:
        # ArcadeDB refuses a root password shorter than 8 characters and exits at start-up.
        raise ValueError("arcadedb: the root password must have at least 8 characters")
    root_dir = Path(root_dir).resolve()
    root_dir.mkdir(parents=True, exist_ok=True)
    free = _free_ports(2)
    bolt_port, http_port = bolt_port or free[0], http_port or free[1]
    cmd = _server_command(root_dir, password, database, bolt_port, http_port, heap)
    log_path = root_dir / LOG_NAME
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=root_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_restore_signals,
        )
    server = ArcadeServer(
        pid=proc.pid, bolt_uri=f"bolt://127.0.0.1:{bolt_port}", http_port=http_port,
        password=password, database=database, root_dir=root_dir, _proc=proc,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    http_ok = False
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            http_ok = http_ok or _http_ready(http_port, database, password)
            if http_ok and _bolt_ready(server.bolt_uri, password, database):
                return server
            time.sleep(0.25)
    except BaseException:  # interrupted while waiting: never leave a JVM behind
        server.stop()
        raise
    exited = proc.poll()
    server.stop()
    state = f"exited with code {exited}" if exited is not None else f"not ready after {READY_TIMEOUT_S:.0f}s"
    raise RuntimeError(
        f"arcadedb: server {state} (bolt {server.bolt_uri}, http port {http_port}); "
        f"log {log_path}:\n{_log_tail(log_path)}"
    )


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cert_loader.testing.arcadedb")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a detached server and print CERT_SP_* exports")
    start.add_argument("--dir", required=True, type=Path)
    start.add_argument("--password", default=None, help="root password (default: random)")
    start.add_argument("--database", default="cert")
    start.add_argument("--bolt-port", type=int, default=None)
    start.add_argument("--http-port", type=int, default=None)
    stop = sub.add_parser("stop", help="stop the server started in --dir")
    stop.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    pid_file = args.dir.resolve() / PID_NAME
    if args.command == "start":
        password = args.password or secrets.token_urlsafe(16)
        try:
            server = start_arcadedb(
                args.dir, password=password, database=args.database,
                bolt_port=args.bolt_port, http_port=args.http_port,
            )
        except (RuntimeError, ValueError) as exc:
            print(exc, file=sys.stderr)
            return 1
        pid_file.write_text(f"{server.pid}\n")
        for key, value in server.env().items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if not pid_file.exists():
        print(f"arcadedb: no {pid_file}; nothing to stop", file=sys.stderr)
        return 0
    pid = int(pid_file.read_text().strip())
    if _pid_alive(pid) and _is_our_server(pid, args.dir.resolve()):
        _kill_group(pid)
    pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
