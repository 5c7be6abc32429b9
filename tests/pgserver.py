"""A throwaway PostgreSQL server for tests: `initdb` into a temporary folder as an unprivileged user
(postgres refuses to run as root), started on a free loopback port, removed afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ADMIN, ADMIN_PASSWORD = "admin", "admin-pw-7Qx"


@dataclass
class PgServer:
    port: int
    folder: Path
    bindir: Path
    user: str | None  # the OS user the server runs as (None: this process's user)

    def url(self, role: str = ADMIN, database: str = "postgres") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}"

    def run(self, *command: str) -> None:
        subprocess.run(list(command), check=True, capture_output=True, text=True, user=self.user,
                       cwd=self.folder)

    def stop(self) -> None:
        subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True, user=self.user, cwd=self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)


def pg_bindir() -> Path | None:
    if shutil.which("pg_config") is None:
        return None
    out = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def _server_user() -> str | None:
    """As root, an unprivileged user: `postgres` from the Debian package, else one made here."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return "postgres"


def start(port: int) -> PgServer:
    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise RuntimeError("PostgreSQL binaries not found (pg_config --bindir); install the Debian package "
                           "`postgresql` (.ci/run and `make test` do)")
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="sqlfoundry-pg-"))  # /tmp, not pytest's 0700 folder: the user must enter it
    os.chmod(folder, 0o755)
    if user:
        shutil.chown(folder, user)
    server = PgServer(port, folder, bindir, user)
    (folder / "pw").write_text(ADMIN_PASSWORD)
    if user:
        shutil.chown(folder / "pw", user)
    try:
        server.run(str(bindir / "initdb"), "-D", str(folder / "data"), "-U", ADMIN, "--pwfile", str(folder / "pw"),
                   "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
        server.run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-t", "60",
                   "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except subprocess.CalledProcessError as err:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {err.stderr}\n{log}") from None
    return server
