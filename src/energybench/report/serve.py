"""Live dashboard: serve the HTML report on 127.0.0.1 and rebuild it as a sweep writes runs.

A watcher thread polls the result directories' signature (sizes and mtimes of ``journal.jsonl``,
``parts/``, ``runs.parquet``, ``metadata.json``: a few ``stat`` calls) and rebuilds the report when
it changes. The page polls ``api/state`` and reloads itself when the report's version changes.
Endpoints: ``/`` (report.html), ``/api/state`` (version, run count and each sweep's progress:
runs done/planned, current point, ETA, last power readings; :mod:`.progress`), ``/api/summary``,
``/figures/<file>``.
Only the loopback interface is ever bound.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from energybench.errors import UsageError
from energybench.report.build import build_report, load_sets

HOST = "127.0.0.1"  # never another address: the dashboard is local only


def dir_signature(dirs: Sequence[Path]) -> tuple[Any, ...]:
    """Cheap fingerprint of result directories: changes whenever a run (or the metadata) is written."""
    sig: list[Any] = []
    for d in dirs:
        for name in ("journal.jsonl", "runs.parquet", "samples.parquet", "metadata.json", "parts"):
            p = d / name
            try:
                st = p.stat()
                sig.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                sig.append((str(p), None, None))
    return tuple(sig)


class ReportServer:
    """The HTTP server and the watcher. Use :func:`serve_report` to create and start one."""

    def __init__(self, dirs: Sequence[Path | str], out_dir: Path | str | None = None, *, port: int = 0,
                 poll_s: float = 1.0, page_poll_ms: int = 2000, **build_kwargs: Any) -> None:
        if not 0 <= int(port) <= 65535:
            raise UsageError(f"--port {port} is not a TCP port", hint="use 0 (any free port) to 65535")
        if poll_s <= 0:
            raise UsageError(f"poll interval {poll_s} must be > 0 seconds")
        self.dirs = [Path(d) for d in dirs]
        load_sets(self.dirs)  # fail early (ResultsError) on a path that is not a results directory
        self.out_dir = Path(out_dir) if out_dir is not None else self.dirs[0] / "report"
        self.port = int(port)
        self.poll_s = float(poll_s)
        self.page_poll_ms = int(page_poll_ms)
        self.build_kwargs = dict(build_kwargs)
        self.version = 0
        self.n_runs = 0
        self.updated_at: str | None = None
        self.last_error: str | None = None
        self.last_traceback: str | None = None
        self.building = False
        self._sig: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- building
    def rebuild(self) -> bool:
        """Build the report now (called by the watcher; also usable directly). True when it succeeded."""
        with self._lock:
            self.building = True
            sig = dir_signature(self.dirs)
            nxt = self.version + 1
            try:
                summary = build_report(self.dirs, self.out_dir,
                                       live={"version": str(nxt), "poll_ms": self.page_poll_ms}, **self.build_kwargs)
            except Exception as exc:  # noqa: BLE001 - keep serving the last good report, show the error
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._sig = sig
                self.last_traceback = traceback.format_exc()
                return False
            finally:
                self.building = False
            self._sig = sig
            self.n_runs = summary.n_runs
            self.updated_at = datetime.now(UTC).strftime("%H:%M:%S")
            self.last_error = None
            self.version = nxt
            return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if dir_signature(self.dirs) != self._sig:
                self.rebuild()

    def state(self) -> dict[str, Any]:
        """The page's poll: report version (a new one reloads the page) and each sweep's progress."""
        from energybench.report.progress import sweep_progress

        return {"version": str(self.version), "n_runs": self.n_runs, "updated_at": self.updated_at,
                "building": self.building, "error": self.last_error,
                "progress": [p for p in (sweep_progress(d) for d in self.dirs) if p is not None]}

    # -- serving
    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> str:
        """Build the first report, bind 127.0.0.1:port (0 = any free port), start serving; returns the URL."""
        if not self.rebuild() and self.version == 0:
            raise UsageError(f"cannot build the report: {self.last_error}")
        handler = _make_handler(self)
        try:
            self._httpd = ThreadingHTTPServer((HOST, self.port), handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {HOST}:{self.port}: {exc.strerror or exc}",
                             hint="choose another --port, or 0 for any free port") from exc
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        for target, name in ((self._httpd.serve_forever, "energybench-report-http"),
                             (self._watch, "energybench-report-watch")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.url

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` (True) or ``timeout`` seconds (False). Ctrl-C raises KeyboardInterrupt."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self._stop.wait(left)
        return True

    def stop(self) -> None:
        """Stop serving and watching (idempotent); waits for a rebuild in progress to finish."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for t in self._threads:
            t.join(timeout=120)
        self._threads.clear()

    def __enter__(self) -> ReportServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_handler(server: ReportServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "energybench-report"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: no request log
            return

        def _send(self, body: bytes, ctype: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _file(self, path: Path, ctype: str) -> None:
            try:
                self._send(path.read_bytes(), ctype)
            except OSError:
                self._send(b"not built yet\n", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND)

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html", "/report.html"):
                self._file(server.out_dir / "report.html", "text/html; charset=utf-8")
            elif path == "/api/state":
                self._send(json.dumps(server.state()).encode(), "application/json")
            elif path == "/api/summary":
                self._file(server.out_dir / "summary.json", "application/json")
            elif path.startswith("/figures/"):
                name = path[len("/figures/"):]
                if "/" in name or name.startswith(".") or not name:
                    self._send(b"bad name\n", "text/plain; charset=utf-8", HTTPStatus.BAD_REQUEST)
                    return
                ctype = {"png": "image/png", "svg": "image/svg+xml"}.get(name.rsplit(".", 1)[-1], "application/octet-stream")
                self._file(server.out_dir / "figures" / name, ctype)
            else:
                self._send(b"not found\n", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND)

    return Handler


def serve_report(dirs: Sequence[Path | str], out_dir: Path | str | None = None, *, port: int = 0,
                 poll_s: float = 1.0, **build_kwargs: Any) -> ReportServer:
    """Build the report, serve it on http://127.0.0.1:<port>/ and keep it fresh; returns the started
    server (``server.url``; ``server.wait()`` blocks; ``server.stop()`` ends it)."""
    srv = ReportServer(dirs, out_dir, port=port, poll_s=poll_s, **build_kwargs)
    srv.start()
    return srv


__all__ = ["HOST", "ReportServer", "dir_signature", "serve_report"]
