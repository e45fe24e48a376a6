"""llama.cpp backend: the parent-side adapter of the worker process (:mod:`._worker`).

All native code runs in the worker. A crash there (segfault, abort, out of memory) becomes a
:class:`RunResult` with ``ok=False``, the signal and the tail of the worker's stderr; the next call
starts a fresh worker and reloads the model that was loaded.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from typing import Any

from energybench.backends.base import (
    BackendInfo,
    ContextParams,
    GenerationRequest,
    LoadParams,
    ModelInfo,
    PerfCounters,
    RunResult,
)
from energybench.errors import BackendError, UsageError, WorkerCrashed

STDERR_TAIL_BYTES = 4000


def describe_returncode(rc: int | None) -> str:
    """'killed by SIGSEGV (segmentation fault)' / 'exited with status 3'."""
    if rc is None:
        return "is unresponsive"
    if rc < 0:
        try:
            sig = signal.Signals(-rc)
            desc = signal.strsignal(sig) or ""
            return f"was killed by {sig.name} ({desc.lower()})" if desc else f"was killed by {sig.name}"
        except (ValueError, AttributeError):
            return f"was killed by signal {-rc}"
    if os.name == "nt" and rc >= 0xC0000000:
        return f"crashed (NTSTATUS 0x{rc:08X})"
    return f"exited with status {rc}"


class _Worker:
    """One worker process and its line-oriented JSON channel."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.stderr_file = tempfile.NamedTemporaryFile(prefix="energybench-worker-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "energybench.backends._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env=full_env,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, name="energybench-worker-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # EOF: the worker is gone

    def stderr_tail(self, n: int = STDERR_TAIL_BYTES) -> str:
        try:
            with open(self.stderr_file.name, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def call(self, msg: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise self._crashed()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._crashed() from None
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise WorkerCrashed(f"llama.cpp worker did not answer {msg.get('op')!r} within {timeout_s:.0f} s; killed it",
                                returncode=None, stderr_tail=self.stderr_tail()) from None
        if line is None:
            raise self._crashed()
        return json.loads(line)

    def _crashed(self) -> WorkerCrashed:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        tail = self.stderr_tail()
        return WorkerCrashed(f"llama.cpp worker {describe_returncode(rc)}", returncode=rc, stderr_tail=tail,
                             hint=_crash_hint(rc, tail))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call({"op": "quit"}, timeout_s=30)
                self.proc.wait(timeout=30)
            except (WorkerCrashed, subprocess.TimeoutExpired, OSError, ValueError):
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        try:
            self.stderr_file.close()
            os.unlink(self.stderr_file.name)
        except OSError:
            pass


def _crash_hint(rc: int | None, tail: str) -> str | None:
    if rc is not None and rc < 0 and -rc == getattr(signal, "SIGSEGV", 11) and "amx" in tail.lower():
        return ("llama.cpp's AMX kernels crash on quantized models on some CPUs: rebuild without AMX "
                "(see README) or pass --no-repack")
    if rc is not None and rc < 0 and -rc == getattr(signal, "SIGKILL", 9):
        return "killed by SIGKILL: out of memory? (check dmesg)"
    return None


class LlamaCppBackend:
    """llama.cpp through llama-cpp-python, in a crash-isolated worker process."""

    name = "llama.cpp"

    def __init__(self, *, env: dict[str, str] | None = None, run_timeout_s: float = 3600.0,
                 load_timeout_s: float = 1800.0, start: bool = False) -> None:
        """``start=True`` spawns the worker now, without waiting for it: importing llama.cpp there
        (~1 s) then overlaps whatever the caller does next; the first call waits for it."""
        self._env = env
        self._worker: _Worker | None = None
        self._worker_ready = False
        self._hello: dict[str, Any] | None = None
        self._load_params: LoadParams | None = None
        self._model_info: ModelInfo | None = None
        self.run_timeout_s = run_timeout_s
        self.load_timeout_s = load_timeout_s
        self.worker_starts = 0
        self.model_loads = 0
        if start:
            self._spawn()

    # ---------------------------------------------------------------- worker lifecycle
    def _spawn(self) -> None:
        if self._worker is not None:
            self._worker.close()
        self._worker = _Worker(self._env)
        self._worker_ready = False
        self.worker_starts += 1
        self._model_info = None

    def _ensure_worker(self) -> _Worker:
        if self._worker is None or not self._worker.alive():
            self._spawn()
        assert self._worker is not None
        if not self._worker_ready:
            resp = self._worker.call({"op": "hello"}, timeout_s=120)
            if not resp.get("ok"):
                raise BackendError(resp.get("error", "llama.cpp worker failed to start"))
            self._hello = resp["result"]
            self._worker_ready = True
        return self._worker

    def _call(self, op: str, timeout_s: float | None, **fields: Any) -> Any:
        worker = self._ensure_worker()
        resp = worker.call({"op": op, **fields}, timeout_s)
        if not resp.get("ok"):
            raise BackendError(resp.get("error", f"{op} failed"))
        return resp["result"]

    @property
    def worker_pid(self) -> int | None:
        return self._worker.proc.pid if self._worker and self._worker.alive() else None

    # ---------------------------------------------------------------- Backend protocol
    def info(self) -> BackendInfo:
        self._ensure_worker()
        h = self._hello or {}
        return BackendInfo(name=self.name, version=h.get("version", "unknown"), system_info=h.get("system_info", ""),
                           supports_gpu_offload=bool(h.get("supports_gpu_offload")), devices=list(h.get("devices", [])),
                           build_flags=_build_flags(h.get("system_info", "")))

    def load(self, params: LoadParams) -> ModelInfo:
        if params.n_gpu_layers != 0:
            info = self.info()
            if not info.supports_gpu_offload:
                raise UsageError(
                    f"n_gpu_layers={params.n_gpu_layers} asks for GPU offload, but the installed llama-cpp-python "
                    "is a CPU-only build", hint="install a CUDA build: see docs/cuda.md")
        if (self._model_info is not None and self._load_params == params and self._worker is not None
                and self._worker.alive()):
            return self._model_info
        try:
            result = self._call("load", self.load_timeout_s, params=params.to_dict())
        except WorkerCrashed as exc:
            self._model_info = None
            raise BackendError(f"loading {params.model_path} failed: {exc.message}", hint=exc.hint) from exc
        self.model_loads += 1
        self._load_params = params
        self._model_info = ModelInfo(**result)
        return self._model_info

    def _ensure_loaded(self) -> None:
        """After a worker restart, reload the model that was loaded before."""
        if self._model_info is None or self._worker is None or not self._worker.alive():
            if self._load_params is None:
                raise BackendError("no model loaded")
            self.load(self._load_params)

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        self._ensure_loaded()
        return list(self._call("tokenize", 300, text=text, add_bos=add_bos))

    def detokenize(self, tokens: list[int]) -> str:
        self._ensure_loaded()
        return str(self._call("detokenize", 300, tokens=list(tokens)))

    def run(self, ctx: ContextParams, req: GenerationRequest) -> RunResult:
        n_prompt = len(req.prompt_tokens)
        if n_prompt + req.n_gen > ctx.n_ctx:
            raise UsageError(f"n_ctx={ctx.n_ctx} is smaller than prompt ({n_prompt}) + generation ({req.n_gen}) tokens",
                             hint=f"use n_ctx >= {n_prompt + req.n_gen}")
        try:
            self._ensure_loaded()
            worker = self._ensure_worker()
            resp = worker.call({"op": "run", "ctx": ctx.to_dict(), "req": {**asdict(req), "prompt_tokens": list(req.prompt_tokens)}},
                               self.run_timeout_s)
        except WorkerCrashed as exc:
            self._model_info = None
            return RunResult(ok=False, error=exc.message + (f" ({exc.hint})" if exc.hint else ""),
                             stderr_tail=exc.stderr_tail, returncode=exc.returncode,
                             n_prompt_tokens=n_prompt)
        except BackendError as exc:
            return RunResult(ok=False, error=exc.one_line(), n_prompt_tokens=n_prompt)
        if not resp.get("ok"):
            return RunResult(ok=False, error=resp.get("error", "run failed"), n_prompt_tokens=n_prompt)
        r = resp["result"]
        return RunResult(
            ok=True,
            t_start_ns=r["t_start_ns"], t_prefill_end_ns=r["t_prefill_end_ns"], t_end_ns=r["t_end_ns"],
            token_t_ns=list(r["token_t_ns"]), n_prompt_tokens=r["n_prompt_tokens"], n_gen_tokens=r["n_gen_tokens"],
            n_repeats=r["n_repeats"], perf=PerfCounters(**r["perf"]), gpu_mem_used_bytes=r.get("gpu_mem_used_bytes"),
        )

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._model_info = None

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_info(self) -> ModelInfo | None:
        return self._model_info


def _build_flags(system_info: str) -> dict[str, str]:
    """Parse llama.cpp's system info ('CPU : SSE3 = 1 | AVX2 = 1 | ...') into a flag dict."""
    flags: dict[str, str] = {}
    for part in system_info.replace("\n", "|").split("|"):
        if "=" in part:
            k, _, v = part.partition("=")
            k = k.split(":")[-1].strip()
            if k:
                flags[k] = v.strip()
    return flags
