"""``energybench fetch`` through ``energybench.cli.main`` (in process) and the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

from models_http import FakeServer, Served  # noqa: E402
from models_support import sha256_hex, small_gguf_bytes, write  # noqa: E402

from energybench.cli import main  # noqa: E402


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENERGYBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "300")
    return tmp_path / "home"


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    s = FakeServer().start()
    yield s
    s.stop()


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("argv", "needle"), [
    (["fetch", "nope:Q4_K_M"], "unknown model alias 'nope:Q4_K_M'"),
    (["fetch", "tinyllama-1.1b-chat:Q1"], "no quant 'Q1'"),
    (["fetch", "hf:o/r/../x.gguf"], "'..'"),
    (["fetch", "http://127.0.0.1:9/a/../x.gguf"], "'..'"),
    (["fetch", "--synthetic", "nope"], "unknown shape 'nope'"),
    (["fetch", "--synthetic", "tiny", "--quant", "Q7"], "unknown quant 'Q7'"),
    (["fetch", "--synthetic", "tiny", "--sha256", "ab"], "--sha256 does not apply"),
    (["fetch"], "missing model reference"),
    (["fetch", "x.gguf", "--quant", "Q4_0"], "--quant and --seed apply to --synthetic"),
    (["fetch", "a", "--synthetic", "tiny"], "not both"),
    (["fetch", "/no/such/file.gguf"], "model file not found"),
])
def test_bad_input_exits_2_with_one_line(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                         needle: str) -> None:
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("energybench: error: ") and needle in line


def test_non_gguf_and_checksum_exit_2(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      server: FakeServer) -> None:
    assert main(["fetch", str(write(tmp_path / "x.gguf", b"hello world, not a model"))]) == 2
    assert "not a GGUF file" in _err_line(capsys)
    body = small_gguf_bytes(1000)
    server.files["/f/m.gguf"] = Served(body)
    assert main(["fetch", server.url("/f/m.gguf"), "--sha256", "e" * 64]) == 2
    assert "sha256 mismatch" in _err_line(capsys)
    assert main(["fetch", server.url("/f/missing.gguf")]) == 2
    assert "HTTP 404" in _err_line(capsys)
    server.files["/f/err.gguf"] = Served(body, status=503)
    assert main(["fetch", server.url("/f/err.gguf")]) == 1
    assert "HTTP 503" in _err_line(capsys)


def test_fetch_url_json_then_list(home: Path, server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    body = small_gguf_bytes(2000)
    server.files["/f/model-x.gguf"] = Served(body)
    assert main(["fetch", server.url("/f/model-x.gguf"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sha256"] == sha256_hex(body) and out["size_bytes"] == len(body) and out["synthetic"] is False
    assert Path(out["path"]).read_bytes() == body
    assert main(["fetch", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == ["model-x"]
    assert main(["fetch", "--list"]) == 0
    table = capsys.readouterr().out
    assert "model-x" in table and sha256_hex(body)[:12] in table


def test_fetch_local_path_prints_path_size_sha_synthetic(home: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    body = small_gguf_bytes(500)
    p = write(tmp_path / "loc.gguf", body)
    assert main(["fetch", str(p), "--name", "local-one"]) == 0
    out = capsys.readouterr().out
    for needle in ("local-one", str(p), f"{len(body):,} bytes", sha256_hex(body), "synthetic", "no"):
        assert needle in out
    assert main(["fetch", str(p), "--name", "local-one"]) == 0  # idempotent
    capsys.readouterr()
    other = write(tmp_path / "other.gguf", small_gguf_bytes(600, seed=9))
    assert main(["fetch", str(other), "--name", "local-one"]) == 2
    assert "already used" in _err_line(capsys)
    assert main(["fetch", str(other), "--name", "local-one", "--force"]) == 0


def test_empty_list(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "--list"]) == 0
    assert "no models cached" in capsys.readouterr().out
    assert main(["fetch", "--list", "x"]) == 2


@pytest.mark.slow
def test_console_script_synthetic(home: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("energybench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "energybench"]
    proc = subprocess.run([*cmd, "fetch", "--synthetic", "tiny", "--quant", "Q8_0", "--seed", "4", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["name"] == "synthetic:tiny:Q8_0@4" and out["synthetic"] is True and out["quant"] == "Q8_0"
    assert out["shape"] == "tiny" and out["seed"] == 4
    assert sha256_hex(Path(out["path"]).read_bytes()) == out["sha256"]
    proc = subprocess.run([*cmd, "fetch", "synthetic:tiny:Q8_0@4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out["sha256"] in proc.stdout and "shape twin of tiny" in proc.stdout
