"""A real HTTP server on 127.0.0.1 for the model download tests.

It serves in-memory files with ``Range``/``If-Range`` support (206 + Content-Range), and can be told
per path to: cut the connection after N body bytes (a given number of times), ignore ``Range``
(answer 200), or answer with a status. It also speaks the small part of the Hugging Face Hub
protocol that ``huggingface_hub.hf_hub_download`` uses (``HEAD``/``GET /{repo}/resolve/{rev}/{file}``
with ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``, and ``X-Error-Code`` on 404).
Every request is recorded (method, path, Range header) for assertions.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Served:
    body: bytes
    cut_after: int | None = None  # close the connection after this many body bytes ...
    cut_times: int = 0  # ... on this many requests
    ignore_range: bool = False
    status: int | None = None  # answer only this status (e.g. 404, 500)
    etag: str = ""

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    if_range: str | None


@dataclass
class HubRepo:
    """A fake Hub repository: files by name, one commit hash."""

    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeServer:
    files: dict[str, Served] = field(default_factory=dict)
    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _httpd: Any = None
    _thread: Any = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # keep test output clean
                pass

            def _record(self) -> None:
                server.requests.append(Request(self.command, self.path, self.headers.get("Range"),
                                               self.headers.get("If-Range")))

            def do_HEAD(self) -> None:  # noqa: N802
                self._record()
                self._serve(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                self._serve(head=False)

            def _send_status(self, code: int, extra: dict[str, str] | None = None) -> None:
                body = f"status {code}\n".encode()
                self.send_response(code)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                hub = self._hub(path)
                if hub is not None:
                    return self._serve_hub(hub, head)
                served = server.files.get(path)
                if served is None:
                    return self._send_status(404)
                if served.status is not None:
                    return self._send_status(served.status)
                self._serve_body(served, head, {})

            def _hub(self, path: str) -> tuple[str, str, str] | None:
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    return "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                return None

            def _serve_hub(self, hub: tuple[str, str, str], head: bool) -> None:
                repo_id, rev, filename = hub
                repo = server.repos.get(repo_id)
                if repo is None:
                    return self._send_status(404, {"X-Error-Code": "RepoNotFound",
                                                   "X-Error-Message": "Repository not found"})
                if rev not in ("main", repo.commit):
                    return self._send_status(404, {"X-Error-Code": "RevisionNotFound",
                                                   "X-Error-Message": "Invalid rev id"})
                body = repo.files.get(filename)
                if body is None:
                    return self._send_status(404, {"X-Error-Code": "EntryNotFound",
                                                   "X-Error-Message": "Entry not found"})
                sha = hashlib.sha256(body).hexdigest()
                extra = {"X-Repo-Commit": repo.commit, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body))}
                self._serve_body(Served(body=body, etag=f'"{sha}"'), head, extra)

            def _serve_body(self, served: Served, head: bool, extra: dict[str, str]) -> None:
                body = served.body
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                partial = False
                if rng and not served.ignore_range and (if_range is None or if_range == served.etag):
                    try:
                        start = int(rng.removeprefix("bytes=").split("-", 1)[0])
                    except ValueError:
                        start = 0
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    partial = True
                chunk = body[start:]
                self.send_response(206 if partial else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", served.etag)
                for k, v in extra.items():
                    self.send_header(k, v)
                if partial:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if head:
                    return
                if served.cut_after is not None and served.cut_times > 0 and start < served.cut_after:
                    served.cut_times -= 1
                    self.wfile.write(body[start:served.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
