"""The live dashboard over real HTTP on 127.0.0.1 while runs are written through ResultsStore.add_run
(by a thread, and by another process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from energybench.report.serve import serve_report
from energybench.results import ResultsStore, read_metadata, read_runs, read_samples
from energybench.testing.synthetic_results import generate_results, small_spec

FAST = dict(figures=False, n_boot=300)

WRITER = r"""
import sys, time
from energybench.results import ResultsStore, read_runs, read_samples
src, dst, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = ResultsStore(dst)
for row in read_runs(src).to_dicts()[start:]:
    store.add_run(row, read_samples(src, [row["run_id"]]))
    time.sleep(0.05)
"""


def _get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _state(base: str) -> dict:
    return json.loads(_get(base + "api/state")[1])


def _wait_for(pred, timeout: float = 120.0, what: str = "") -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("serve") / "src"
    generate_results(src, small_spec(n_failed=0), layout="parts")
    return src


def _seed(src: Path, dst: Path, n: int) -> int:
    """A sweep in progress: the source's metadata and its first n runs."""
    store = ResultsStore(dst)
    store.create(read_metadata(src))
    runs = read_runs(src).to_dicts()
    for row in runs[:n]:
        store.add_run(row, read_samples(src, [row["run_id"]]))
    return len(runs)


def _results_rows(html: str) -> int:
    table = html.split('id="results"', 1)[1].split("</table>", 1)[0]
    return len(re.findall(r"<tr", table)) - 1


def test_serves_and_refreshes_while_a_thread_writes(source, tmp_path):
    dst = tmp_path / "live"
    total = _seed(source, dst, 4)
    srv = serve_report([dst], tmp_path / "out", port=0, poll_s=0.2, **FAST)
    try:
        base = srv.url
        assert base.startswith("http://127.0.0.1:") and srv.port > 0
        status, body = _get(base)
        html = body.decode()
        assert status == 200 and "energybench report" in html and "api/state" in html
        assert _state(base)["n_runs"] == 4 and _state(base)["version"] == "1"

        def write():
            store = ResultsStore(dst)
            for row in read_runs(source).to_dicts()[4:]:
                store.add_run(row, read_samples(source, [row["run_id"]]))
                time.sleep(0.02)

        t = threading.Thread(target=write)
        t.start()
        # the page keeps answering while runs arrive and the report is rebuilt
        while t.is_alive():
            assert _get(base)[0] == 200
            time.sleep(0.05)
        t.join()
        _wait_for(lambda: _state(base)["n_runs"] == total and not _state(base)["building"], what="the last rebuild")
        st = _state(base)
        assert int(st["version"]) >= 2 and st["error"] is None
        html = _get(base)[1].decode()
        assert _results_rows(html) == 8
        assert f'var v="{st["version"]}"' in html  # the page knows its version
        summary = json.loads(_get(base + "api/summary")[1])
        assert sum(x["runs"] for x in summary["sets"]) == total
        assert _get(base + "figures/..%2Fmetadata.json")[0] in (400, 404)
        assert _get(base + "figures/.hidden")[0] == 400
        assert _get(base + "nope")[0] == 404
    finally:
        srv.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(base, timeout=2)


def test_cli_serve_with_a_writer_process_and_ctrl_c(source, tmp_path):
    dst = tmp_path / "live2"
    total = _seed(source, dst, 3)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "energybench", "report", str(dst), "-o", str(tmp_path / "out"), "--serve",
         "--port", "0", "--no-figures", "--bootstrap", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = server.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
        assert _state(url)["n_runs"] == 3
        writer = subprocess.run([sys.executable, "-c", WRITER, str(source), str(dst), "3"], env=env, timeout=300)
        assert writer.returncode == 0
        _wait_for(lambda: _state(url)["n_runs"] == total and not _state(url)["building"], what="the refresh")
        assert _results_rows(_get(url)[1].decode()) == 8
        server.send_signal(signal.SIGINT)  # Ctrl-C
        rc = server.wait(timeout=120)
        err = server.stderr.read()
        assert rc == 0, err
        assert "stopped" in err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_port_in_use_is_a_clear_error(source, tmp_path):
    import socket

    from energybench.errors import UsageError

    dst = tmp_path / "busy"
    _seed(source, dst, 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_report([dst], tmp_path / "out", port=port, **FAST)
    with pytest.raises(UsageError, match="not a TCP port"):
        serve_report([dst], tmp_path / "out", port=70000, **FAST)
