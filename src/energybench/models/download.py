"""Downloading model files: plain HTTP(S) with resume, and the Hugging Face Hub.

HTTP: the body streams into ``NAME.part`` next to the final name while its sha256 is computed;
an interrupted download is resumed with a ``Range`` request (guarded by ``If-Range`` with the
server's ETag / Last-Modified, stored in ``NAME.part.json``); a server that ignores ``Range``
(answers 200) makes us start over. Only when the size, the expected sha256 (if given) and the GGUF
structure check out is ``.part`` renamed to the final name, so a file under its final name is
always complete. A bad checksum or a non-GGUF body deletes the ``.part``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import http.client
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from energybench import __version__
from energybench.errors import ChecksumError, FetchError, ModelError
from energybench.models.gguf_check import GGUFInfo, read_gguf_info
from energybench.models.manifest import file_lock

#: progress(done_bytes, total_bytes or None); called from the downloading thread.
ProgressFn = Callable[[int, "int | None"], None]

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
USER_AGENT = f"energybench/{__version__}"
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RemoteNotFound(FetchError):
    """The server says the file does not exist (HTTP 404/410, unknown repo/file/revision): bad input."""

    exit_code = 2


class DownloadInterrupted(FetchError):
    """The connection broke mid-body; the partial file is kept and the next try resumes it."""

    def __init__(self, message: str, *, done_bytes: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.done_bytes = done_bytes


# ----------------------------------------------------------------------------- names


def check_relative_name(value: str, *, what: str) -> PurePosixPath:
    """A remote or local relative name with no ``..``/``.``/empty segment, not absolute, no backslash.

    Raises :class:`ModelError` before any request is made.
    """
    if not value:
        raise ModelError(f"{what} is empty")
    if "\\" in value or "\x00" in value:
        raise ModelError(f"{what} {value!r} contains a backslash or NUL; use '/' separated names")
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        raise ModelError(f"{what} {value!r} is an absolute path; give a name relative to the repository")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ModelError(f"{what} {value!r} has a {part or 'empty'!r} path segment; "
                             "'..', '.' and empty segments are not allowed")
    return PurePosixPath(value)


def url_filename(url: str) -> str:
    """The file name a URL downloads to, after rejecting ``..`` segments in its path."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise ModelError(f"unsupported URL scheme in {url!r}; use http:// or https://")
    if not parsed.hostname:
        raise ModelError(f"URL {url!r} has no host")
    raw_segments = parsed.path.split("/")
    for seg in raw_segments:
        decoded = urllib.parse.unquote(seg)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            raise ModelError(f"URL {url!r} has a {decoded!r} path segment; '..', '.' and encoded separators "
                             "are not allowed")
    name = urllib.parse.unquote(raw_segments[-1]) if raw_segments else ""
    if not name:
        raise ModelError(f"URL {url!r} does not end in a file name", hint="give the URL of the .gguf file itself")
    return name


def lock_path_for(dest: Path) -> Path:
    """The lock file that serialises writers of ``dest`` (downloads, synthesis) across processes."""
    return dest.with_name(f".{dest.name}.lock")


def url_cache_path(root: Path, url: str) -> Path:
    """Where a URL is cached: ``root/downloads/HOST[_PORT]/FILENAME``."""
    name = url_filename(url)
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "unknown"
    if parsed.port:
        host = f"{host}_{parsed.port}"
    return root / "downloads" / host / name


# ----------------------------------------------------------------------------- helpers


def sha256_file(path: Path, *, progress: ProgressFn | None = None, chunk: int = 4 * CHUNK_BYTES) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def disk_full_error(path: Path, exc: OSError) -> FetchError:
    """A one-line 'disk full' error naming the file and the free space there."""
    where = path.parent if not path.is_dir() else path
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
        free_txt = f"{free / 1e6:,.1f} MB free"
    except OSError:
        free_txt = "free space unknown"
    kind = "file size limit reached" if exc.errno == errno.EFBIG else "disk full"
    return FetchError(f"{kind} while writing {path} ({os.strerror(exc.errno or 0)}; {free_txt} on that filesystem)",
                      hint="free some space (or point ENERGYBENCH_HOME elsewhere) and run the command again")


def check_free_space(path: Path, need_bytes: int) -> None:
    """Raise a :class:`FetchError` before writing when the filesystem lacks ``need_bytes``."""
    where = path
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need_bytes > free:
        raise FetchError(f"not enough disk space for {path}: need {need_bytes / 1e6:,.1f} MB, "
                         f"{free / 1e6:,.1f} MB free on that filesystem",
                         hint="free some space (or point ENERGYBENCH_HOME elsewhere) and run the command again")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def verify_sha256(path: Path, actual: str, expected: str | None, *, delete: bool = True) -> None:
    """Raise :class:`ChecksumError` (deleting ``path``) when ``expected`` is given and differs."""
    if expected is None or actual.lower() == expected.lower():
        return
    if delete:
        with contextlib.suppress(OSError):
            path.unlink()
    raise ChecksumError(f"sha256 mismatch for {path.name}: expected {expected.lower()}, got {actual}; "
                        "the bad download was deleted",
                        hint="check --sha256, or the source changed; run again to re-download")


def normalize_sha256(value: str | None) -> str | None:
    """Lowercase hex sha256 or None; :class:`ModelError` for anything else."""
    if value is None:
        return None
    v = value.strip().lower().removeprefix("sha256:")
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ModelError(f"--sha256 {value!r} is not a 64-digit hex sha256")
    return v


# ----------------------------------------------------------------------------- HTTP


def _http_error(url: str, exc: urllib.error.HTTPError) -> FetchError:
    reason = exc.reason if isinstance(exc.reason, str) else str(exc.reason)
    if exc.code in (404, 410):
        return RemoteNotFound(f"HTTP {exc.code} {reason} for {url}", hint="check the URL")
    if exc.code in (401, 403):
        return FetchError(f"HTTP {exc.code} {reason} for {url}", hint="the file needs credentials or is private")
    return FetchError(f"HTTP {exc.code} {reason} for {url}")


def _read_part_meta(meta_path: Path) -> dict[str, Any]:
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _open(url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers})
    return urllib.request.urlopen(req, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked in url_filename


def _content_range_start_total(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/200' → (100, 200); '*' total → None."""
    if not value or not value.startswith("bytes "):
        return None, None
    try:
        span, _, total = value[6:].partition("/")
        start = int(span.split("-", 1)[0])
        return start, (int(total) if total.strip() != "*" else None)
    except ValueError:
        return None, None


def http_download(url: str, dest: Path, *, expected_sha256: str | None = None, progress: ProgressFn | None = None,
                  retries: int = 3, validate: Callable[[Path], GGUFInfo] = read_gguf_info,
                  lock: bool = True) -> tuple[str, GGUFInfo]:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); return (sha256, GGUF info).

    ``retries`` extra attempts (each resuming) are made after a broken connection; when they are
    used up, :class:`DownloadInterrupted` is raised and the ``.part`` file stays for the next run.
    Raises :class:`RemoteNotFound` (404/410), :class:`FetchError` (other statuses, network, disk
    full), :class:`ChecksumError` (mismatch; ``.part`` deleted), :class:`ModelError` (not a GGUF
    file or truncated; ``.part`` deleted). Never leaves a bad file under ``dest``.
    With ``lock=False`` the caller must hold ``file_lock(lock_path_for(dest))``.
    """
    expected_sha256 = normalize_sha256(expected_sha256)
    url_filename(url)  # rejects '..' and bad schemes before any request
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    with file_lock(lock_path_for(dest)) if lock else contextlib.nullcontext():
        attempt = 0
        while True:
            try:
                digest = _download_once(url, part, meta_path, progress)
                break
            except DownloadInterrupted:
                attempt += 1
                if attempt > retries:
                    raise
                time.sleep(min(2.0, 0.25 * attempt))
        try:
            info = validate(part)
        except ModelError:
            with contextlib.suppress(OSError):
                part.unlink()
            with contextlib.suppress(OSError):
                meta_path.unlink()
            raise
        verify_sha256(part, digest, expected_sha256)  # deletes .part on mismatch
        with contextlib.suppress(OSError):
            meta_path.unlink()
        os.replace(part, dest)
        _fsync_dir(dest.parent)
    return digest, dataclasses.replace(info, path=dest)


def _download_once(url: str, part: Path, meta_path: Path, progress: ProgressFn | None) -> str:
    """One HTTP request: resume or (re)start ``part``; return the sha256 of the complete file."""
    have = part.stat().st_size if part.exists() else 0
    meta = _read_part_meta(meta_path) if have else {}
    if have and meta.get("url") != url:
        have = 0  # a leftover from another URL with the same file name
    headers: dict[str, str] = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        resp = _open(url, headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            _, total = _content_range_start_total(exc.headers.get("Content-Range") if exc.headers else None)
            if total == have:  # the previous run got every byte but stopped before the rename
                if progress is not None:
                    progress(have, total)
                return sha256_file(part)
            # our .part is not a prefix the server can continue (e.g. longer than the file): start over
            with contextlib.suppress(OSError):
                part.unlink()
            return _download_once(url, part, meta_path, progress)
        raise _http_error(url, exc) from None
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise FetchError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}",
                         hint="check the URL and the network") from None
    except (TimeoutError, socket.timeout):
        raise FetchError(f"timed out connecting to {urllib.parse.urlsplit(url).netloc}") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise DownloadInterrupted(f"connection to {url} failed: {exc!r}", done_bytes=have) from None

    with resp:
        status = resp.status
        h = hashlib.sha256()
        if status == 206 and have:
            start, total = _content_range_start_total(resp.headers.get("Content-Range"))
            if start != have:
                raise FetchError(f"server answered a resume request for {url} with the wrong range "
                                 f"({resp.headers.get('Content-Range')!r}, asked from byte {have})")
            with open(part, "rb") as f:  # hash what we already have
                while block := f.read(4 * CHUNK_BYTES):
                    h.update(block)
            mode = "ab"
            done = have
        elif status == 200:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"  # fresh start, or the server ignored Range / If-Range said it changed
            done = 0
        else:
            raise FetchError(f"unexpected HTTP {status} for {url}")
        new_meta = {"url": url, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified"),
                    "total_bytes": total}
        if total is not None:
            check_free_space(part, total - done)
        try:
            if mode == "wb":
                meta_path.write_text(json.dumps(new_meta), encoding="utf-8")
            with open(part, mode) as out:
                if progress is not None:
                    progress(done, total)
                while True:
                    try:
                        block = resp.read(CHUNK_BYTES)
                    except http.client.IncompleteRead as exc:
                        if exc.partial:
                            out.write(exc.partial)
                            h.update(exc.partial)
                            done += len(exc.partial)
                        raise DownloadInterrupted(
                            f"connection lost after {done} of {total if total is not None else '?'} bytes of {url}",
                            done_bytes=done, hint="run the same command again to resume") from None
                    except (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException) as exc:
                        raise DownloadInterrupted(
                            f"connection lost after {done} of {total if total is not None else '?'} bytes of {url} "
                            f"({exc.__class__.__name__})", done_bytes=done,
                            hint="run the same command again to resume") from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise disk_full_error(part, exc) from None
            raise FetchError(f"cannot write {part}: {exc.strerror or exc}") from None
        if total is not None and done != total:
            raise DownloadInterrupted(f"connection lost after {done} of {total} bytes of {url}", done_bytes=done,
                                      hint="run the same command again to resume")
        return h.hexdigest()


# ----------------------------------------------------------------------------- Hugging Face


class _DevNull:
    def write(self, _s: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _forwarding_tqdm(progress: ProgressFn) -> type:
    """A tqdm class for ``hf_hub_download(tqdm_class=...)`` that reports bytes to ``progress``."""
    from tqdm import tqdm as base

    state = {"owner": None}

    class _Forward(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = _DevNull()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            if state["owner"] is None:
                state["owner"] = id(self)  # only the first bar is the file's bytes

        def update(self, n: float | None = 1) -> bool | None:
            r = super().update(n)
            if state["owner"] == id(self):
                progress(int(self.n), int(self.total) if self.total else None)
            return r

    return _Forward


def hf_download(repo: str, filename: str, *, revision: str | None, cache_dir: Path,
                progress: ProgressFn | None = None, force: bool = False) -> Path:
    """``huggingface_hub.hf_hub_download`` into ``cache_dir`` (its cache layout, its resume).

    ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured as by the ``hf`` CLI. Errors become one-line
    :class:`FetchError` / :class:`RemoteNotFound`.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    check_relative_name(repo, what="Hugging Face repository")
    check_relative_name(filename, what="file name")
    if repo.count("/") != 1:
        raise ModelError(f"Hugging Face repository {repo!r} must be OWNER/NAME")
    where = f"{repo}/{filename}" + (f"@{revision}" if revision else "")
    kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        kwargs["endpoint"] = endpoint.rstrip("/")
    if progress is not None:
        kwargs["tqdm_class"] = _forwarding_tqdm(progress)
    try:
        local = hf_hub_download(repo_id=repo, filename=filename, revision=revision, cache_dir=str(cache_dir),
                                force_download=force, **kwargs)
    except hf_errors.GatedRepoError:  # (a RepositoryNotFoundError subclass: first)
        raise FetchError(f"Hugging Face repository {repo!r} is gated",
                         hint="accept its license on the Hub and set HF_TOKEN") from None
    except hf_errors.RepositoryNotFoundError:
        raise RemoteNotFound(f"Hugging Face repository {repo!r} not found (or private)",
                             hint="check the name; set HF_TOKEN for private or gated repositories") from None
    except hf_errors.RevisionNotFoundError:
        raise RemoteNotFound(f"revision {revision!r} not found in Hugging Face repository {repo!r}") from None
    except hf_errors.LocalEntryNotFoundError as exc:  # (an EntryNotFoundError subclass: before it)
        raise FetchError(f"cannot download {where} from the Hugging Face Hub: {_first_line(exc)}",
                         hint="check the network (or HF_HUB_OFFLINE)") from None
    except hf_errors.EntryNotFoundError:
        raise RemoteNotFound(f"file {filename!r} not found in Hugging Face repository {repo!r}"
                             + (f" at revision {revision}" if revision else "")) from None
    except hf_errors.HfHubHTTPError as exc:
        raise FetchError(f"Hugging Face Hub error for {where}: {_first_line(exc)}") from None
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise disk_full_error(cache_dir / "x", exc) from None
        raise FetchError(f"downloading {where} failed: {_first_line(exc)}") from None
    return Path(local)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
