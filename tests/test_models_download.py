"""Downloads against a real HTTP server on 127.0.0.1: resume, bad statuses, checksums, bad bodies,
``..`` names, disk full (RLIMIT_FSIZE in a subprocess), and the Hugging Face Hub protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

from models_http import FakeServer, HubRepo, Served  # noqa: E402
from models_support import sha256_hex, small_gguf_bytes  # noqa: E402

from energybench.errors import ChecksumError, FetchError, ModelError  # noqa: E402
from energybench.models import Manifest, fetch_model, resolve_model  # noqa: E402
from energybench.models.download import (  # noqa: E402
    DownloadInterrupted,
    RemoteNotFound,
    http_download,
    url_cache_path,
)

BODY = small_gguf_bytes(60_000, seed=1)  # ~240 kB: several read chunks are not needed, one cut is enough


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENERGYBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    s = FakeServer().start()
    yield s
    s.stop()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_download_registers_and_reports_progress(home: Path, server: FakeServer) -> None:
    server.files["/m/model-a.gguf"] = Served(BODY)
    seen: list[tuple[int, int | None]] = []
    m = fetch_model(server.url("/m/model-a.gguf"), progress=lambda d, t: seen.append((d, t)))
    assert m.sha256 == sha256_hex(BODY)
    assert m.size_bytes == len(BODY)
    assert m.path.read_bytes() == BODY
    assert m.name == "model-a"
    assert m.source == server.url("/m/model-a.gguf")
    assert not m.synthetic
    assert m.path == url_cache_path(home / "models", server.url("/m/model-a.gguf"))
    assert seen[-1] == (len(BODY), len(BODY))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not list(m.path.parent.glob("*.part*"))
    # second resolve is a manifest hit: no new request
    n = len(server.requests)
    again = resolve_model(server.url("/m/model-a.gguf"))
    assert again.sha256 == m.sha256 and len(server.requests) == n
    assert Manifest().get("model-a") is not None


def test_cut_connection_keeps_part_and_rerun_resumes_with_range(home: Path, server: FakeServer, tmp_path: Path) -> None:
    cut = 100_001
    server.files["/m/cut.gguf"] = Served(BODY, cut_after=cut, cut_times=1)
    dest = tmp_path / "dl" / "cut.gguf"
    with pytest.raises(DownloadInterrupted) as exc:
        http_download(server.url("/m/cut.gguf"), dest, retries=0)
    assert "connection lost after" in exc.value.one_line() and exc.value.exit_code == 1
    part = dest.with_name("cut.gguf.part")
    assert part.stat().st_size == cut and not dest.exists()
    digest, info = http_download(server.url("/m/cut.gguf"), dest, retries=0)
    assert digest == sha256_hex(BODY) and dest.read_bytes() == BODY and not part.exists()
    assert info.path == dest
    ranges = [r.range for r in server.requests if r.path == "/m/cut.gguf"]
    assert ranges == [None, f"bytes={cut}-"]
    etag = server.files["/m/cut.gguf"].etag
    assert server.requests[-1].if_range == etag


def test_cut_connection_is_resumed_automatically_within_one_call(home: Path, server: FakeServer) -> None:
    server.files["/m/flaky.gguf"] = Served(BODY, cut_after=50_000, cut_times=1)
    m = fetch_model(server.url("/m/flaky.gguf"))
    assert m.sha256 == sha256_hex(BODY)
    assert [r.range for r in server.requests] == [None, "bytes=50000-"]


def test_server_that_ignores_range_restarts_from_zero(home: Path, server: FakeServer, tmp_path: Path) -> None:
    server.files["/m/norange.gguf"] = Served(BODY, cut_after=70_000, cut_times=1, ignore_range=True)
    dest = tmp_path / "norange.gguf"
    with pytest.raises(DownloadInterrupted):
        http_download(server.url("/m/norange.gguf"), dest, retries=0)
    digest, _ = http_download(server.url("/m/norange.gguf"), dest, retries=0)
    assert digest == sha256_hex(BODY) and dest.read_bytes() == BODY


def test_changed_file_is_not_spliced(home: Path, server: FakeServer, tmp_path: Path) -> None:
    """If-Range: a .part from an older version of the file is discarded, not completed with new bytes."""
    server.files["/m/v.gguf"] = Served(BODY, cut_after=60_000, cut_times=1)
    dest = tmp_path / "v.gguf"
    with pytest.raises(DownloadInterrupted):
        http_download(server.url("/m/v.gguf"), dest, retries=0)
    new_body = small_gguf_bytes(60_000, seed=2)
    server.files["/m/v.gguf"] = Served(new_body)
    digest, _ = http_download(server.url("/m/v.gguf"), dest, retries=0)
    assert digest == sha256_hex(new_body) and dest.read_bytes() == new_body


def test_404_and_500(home: Path, server: FakeServer) -> None:
    with pytest.raises(RemoteNotFound, match="HTTP 404") as exc:
        fetch_model(server.url("/m/missing.gguf"))
    assert exc.value.exit_code == 2
    server.files["/m/err.gguf"] = Served(BODY, status=500)
    with pytest.raises(FetchError, match="HTTP 500") as exc2:
        fetch_model(server.url("/m/err.gguf"))
    assert exc2.value.exit_code == 1
    assert _files(home) == [] or "manifest.json" not in " ".join(_files(home))


def test_wrong_checksum_deletes_the_download(home: Path, server: FakeServer) -> None:
    server.files["/m/sum.gguf"] = Served(BODY)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as exc:
        fetch_model(server.url("/m/sum.gguf"), sha256=wrong)
    assert exc.value.exit_code == 2 and wrong in exc.value.one_line() and sha256_hex(BODY) in exc.value.one_line()
    assert [f for f in _files(home) if f.endswith((".gguf", ".part"))] == []
    assert Manifest().entries() == {}
    ok = fetch_model(server.url("/m/sum.gguf"), sha256=sha256_hex(BODY).upper())
    assert ok.sha256 == sha256_hex(BODY)


def test_bad_sha256_argument(home: Path, server: FakeServer) -> None:
    with pytest.raises(ModelError, match="64-digit hex"):
        fetch_model(server.url("/m/x.gguf"), sha256="abc")
    assert server.requests == []


def test_non_gguf_body_is_rejected_and_deleted(home: Path, server: FakeServer) -> None:
    server.files["/m/page.gguf"] = Served(b"<html><body>Sign in to continue</body></html>\n" * 50)
    with pytest.raises(ModelError, match="not a GGUF file") as exc:
        fetch_model(server.url("/m/page.gguf"))
    assert exc.value.exit_code == 2
    assert [f for f in _files(home) if "page" in f] == []


def test_truncated_gguf_body_is_rejected_and_deleted(home: Path, server: FakeServer) -> None:
    server.files["/m/trunc.gguf"] = Served(BODY[: len(BODY) - 5000])
    with pytest.raises(ModelError, match="truncated"):
        fetch_model(server.url("/m/trunc.gguf"))
    assert [f for f in _files(home) if "trunc" in f] == []


@pytest.mark.parametrize("ref", [
    "http://127.0.0.1:9/a/../b.gguf",
    "http://127.0.0.1:9/a/%2e%2e/b.gguf",
    "http://127.0.0.1:9/a/..%2fb.gguf",
    "http://127.0.0.1:9/",
    "hf:owner/repo/../x.gguf",
    "hf:owner/repo//x.gguf",
    "hf:owner/repo/x.gguf@../main",
    "hf:/etc/passwd",
])
def test_dotdot_and_absolute_names_rejected_before_any_request(home: Path, ref: str) -> None:
    with pytest.raises(ModelError) as exc:
        fetch_model(ref)
    assert exc.value.exit_code == 2
    assert not (home / "models" / "downloads").exists()


def test_unreachable_host(home: Path, server: FakeServer) -> None:
    url = server.url("/m/x.gguf")
    server.stop()
    with pytest.raises(FetchError, match="cannot reach"):
        fetch_model(url)


_DISK_FULL_SCRIPT = textwrap.dedent("""
    import resource, sys
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from energybench.cli import main
    sys.exit(main(["fetch", sys.argv[1]]))
""")


def test_disk_full_is_one_line_with_path_and_free_space(home: Path, server: FakeServer, tmp_path: Path) -> None:
    """A real EFBIG: the child's file size limit is below the download's size."""
    server.files["/m/big.gguf"] = Served(BODY)
    env = dict(os.environ, ENERGYBENCH_HOME=str(home), COLUMNS="400")
    proc = subprocess.run([sys.executable, "-c", _DISK_FULL_SCRIPT, server.url("/m/big.gguf"), "65536"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("energybench: error: file size limit reached while writing")
    assert "big.gguf.part" in line and "MB free" in line
    dest = url_cache_path(home / "models", server.url("/m/big.gguf"))
    assert not dest.exists()
    assert Manifest().entries() == {}
    # with the limit lifted, the rerun resumes the partial file and completes it
    m = fetch_model(server.url("/m/big.gguf"))
    assert m.sha256 == sha256_hex(BODY)
    assert [r.range for r in server.requests][-1] == "bytes=65536-"


# ----------------------------------------------------------------------------- Hugging Face protocol


def test_hf_download_through_the_hub_protocol(home: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.repos["owner/repo"] = HubRepo(files={"sub/model-q.gguf": BODY})
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    seen: list[tuple[int, int | None]] = []
    m = fetch_model("hf:owner/repo/sub/model-q.gguf", progress=lambda d, t: seen.append((d, t)))
    assert m.sha256 == sha256_hex(BODY) and m.path.read_bytes() == BODY
    assert m.name == "model-q" and m.source == "hf:owner/repo/sub/model-q.gguf"
    assert str(m.path).startswith(str(home / "models" / "hf"))
    assert seen and seen[-1][0] == len(BODY)
    n = len(server.requests)
    assert resolve_model("hf:owner/repo/sub/model-q.gguf").path == m.path
    assert resolve_model("model-q").path == m.path
    assert len(server.requests) == n  # manifest hits
    pinned = fetch_model(f"hf:owner/repo/sub/model-q.gguf@{server.repos['owner/repo'].commit}")
    assert pinned.sha256 == m.sha256


def test_hf_errors(home: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.repos["owner/repo"] = HubRepo(files={"a.gguf": BODY, "page.gguf": b"not a model at all" * 10})
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    with pytest.raises(RemoteNotFound, match="file 'nope.gguf' not found") as exc:
        fetch_model("hf:owner/repo/nope.gguf")
    assert exc.value.exit_code == 2
    with pytest.raises(RemoteNotFound, match="repository 'owner/other' not found"):
        fetch_model("hf:owner/other/a.gguf")
    with pytest.raises(RemoteNotFound, match="revision 'v9'"):
        fetch_model("hf:owner/repo/a.gguf@v9")
    with pytest.raises(ChecksumError):
        fetch_model("hf:owner/repo/a.gguf", sha256="1" * 64)
    blobs = list((home / "models" / "hf").rglob("blobs/*"))
    assert [b for b in blobs if b.is_file() and b.stat().st_size == len(BODY)] == []
    with pytest.raises(ModelError, match="not a GGUF file"):
        fetch_model("hf:owner/repo/page.gguf")
    assert Manifest().entries() == {}


def test_alias_enforces_the_pinned_checksum(home: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias resolves to TheBloke's file at the pinned revision; a file with another sha256 is refused."""
    from energybench.models.aliases import TINYLLAMA_CHAT

    repo = HubRepo(files={"tinyllama-1.1b-chat-v1.0.Q4_0.gguf": BODY}, commit=TINYLLAMA_CHAT.revision or "x")
    server.repos[TINYLLAMA_CHAT.repo] = repo
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    with pytest.raises(ChecksumError, match="da3087fb14aede55fde6eb81a0e55e886810e43509ec82ecdc7aa5d62a03b556"):
        fetch_model("tinyllama-1.1b-chat:Q4_0")
    paths = [r.path for r in server.requests]
    assert any(f"/resolve/{TINYLLAMA_CHAT.revision}/tinyllama-1.1b-chat-v1.0.Q4_0.gguf" in p for p in paths)
    assert Manifest().entries() == {}
    with pytest.raises(ChecksumError):  # the same file named by its hf: source at the pinned revision
        fetch_model(f"hf:{TINYLLAMA_CHAT.repo}/tinyllama-1.1b-chat-v1.0.Q4_0.gguf@{TINYLLAMA_CHAT.revision}")
    # a quant without a published checksum is accepted and recorded with the computed sha256
    repo.files["tinyllama-1.1b-chat-v1.0.Q5_K_S.gguf"] = BODY
    m = fetch_model("tinyllama-1.1b-chat:q5_k_s")
    assert m.name == "tinyllama-1.1b-chat:Q5_K_S" and m.quant == "Q5_K_S" and m.sha256 == sha256_hex(BODY)
    assert resolve_model("tinyllama-1.1b-chat:Q5_K_S", allow_fetch=False).path == m.path


def test_manifest_entry_is_json(home: Path, server: FakeServer) -> None:
    server.files["/m/j.gguf"] = Served(BODY)
    fetch_model(server.url("/m/j.gguf"), name="my-model")
    doc = json.loads((home / "models" / "manifest.json").read_text())
    e = doc["models"]["my-model"]
    assert doc["version"] == 1
    assert e["sha256"] == sha256_hex(BODY) and e["size_bytes"] == len(BODY) and e["synthetic"] is False
    assert {"name", "path", "sha256", "size_bytes", "source", "synthetic", "shape", "quant", "seed",
            "added_at"} <= set(e)


def test_downloaded_file_is_registered_again_after_the_manifest_is_deleted(home: Path, server: FakeServer) -> None:
    server.files["/m/again.gguf"] = Served(BODY)
    m = fetch_model(server.url("/m/again.gguf"))
    (home / "models" / "manifest.json").unlink()
    n = len(server.requests)
    again = resolve_model(server.url("/m/again.gguf"))
    assert again.sha256 == m.sha256 and again.path == m.path and len(server.requests) == n
    # with --force it is downloaded again
    assert fetch_model(server.url("/m/again.gguf"), force=True).sha256 == m.sha256
    assert len(server.requests) == n + 1
