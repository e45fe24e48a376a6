"""The llama.cpp inference worker: a separate process that owns all native code.

Run as ``python -m energybench.backends._worker``. It speaks newline-delimited JSON: requests on
stdin, responses on a private duplicate of the original stdout (fd 1 itself is pointed at stderr so
nothing native can corrupt the protocol). A segfault here kills only this process; the parent
(:mod:`energybench.backends.llamacpp`) records a failed run and starts a fresh worker.

The hot loop talks to llama.cpp's C API directly (``llama_decode`` on one-token batches, a
greedy sampler chain inside llama.cpp, no logits copied to Python): the same work llama.cpp's own
tools do, so the measurement costs nothing beyond one ``time.monotonic_ns()`` per token.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

# Test hook (never set in normal use): "segv@always", "abort@n_threads=2", "segv@n_batch=64",
# "segv@repack=True" (a context or load parameter).
# The worker then crashes in native code at the start of a matching run — a real crash of a real
# process, which is what the crash-isolation tests need to exercise.
CRASH_ENV = "ENERGYBENCH_TEST_CRASH"

FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


class WorkerError(Exception):
    """An error reported back to the parent as a failed response (not a crash)."""


class Engine:
    """State of the worker: one loaded model, one context, one sampler chain."""

    def __init__(self) -> None:
        import llama_cpp as ll  # imported here: the parent never loads the native library

        self.ll = ll
        ll.llama_backend_init()
        self.model = None
        self.model_key: str | None = None
        self.vocab = None
        self.ctx = None
        self.ctx_key: str | None = None
        self.sampler = None
        self.n_layer = 0

    # ------------------------------------------------------------------ info
    def hello(self) -> dict[str, Any]:
        ll = self.ll
        return {
            "pid": os.getpid(),
            "version": getattr(ll, "__version__", "unknown"),
            "system_info": ll.llama_print_system_info().decode(errors="replace").strip(),
            "supports_gpu_offload": bool(ll.llama_supports_gpu_offload()),
            "devices": self._devices(),
            "device_list": self._device_list_or_note()[0],
            "devices_note": self._device_list_or_note()[1],
            "python": sys.version.split()[0],
        }

    def _device_list_or_note(self) -> tuple[list[dict[str, Any]], str | None]:
        if self._ggml() is None:
            return [], "libggml not found next to libllama (or it lacks the device registry): ggml device list unavailable"
        try:
            return self.device_list(), None
        except Exception as exc:  # noqa: BLE001 - informational only
            return [], f"ggml device enumeration failed: {exc}"

    def _ggml(self):
        """ggml's device registry (not bound by llama-cpp-python): libggml next to libllama."""
        if getattr(self, "_ggml_lib", None) is not None:
            return self._ggml_lib or None
        lib = None
        libdir = os.path.join(os.path.dirname(self.ll.__file__), "lib")
        names = ["libggml.so", "libggml.dylib", "ggml.dll"]
        for n in names:
            path = os.path.join(libdir, n)
            if os.path.exists(path):
                try:
                    lib = ctypes.CDLL(path)
                    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
                    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
                    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
                    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
                        getattr(lib, fn).argtypes = [ctypes.c_void_p]
                        getattr(lib, fn).restype = ctypes.c_char_p
                    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
                    lib.ggml_backend_dev_type.restype = ctypes.c_int
                    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                                            ctypes.POINTER(ctypes.c_size_t)]
                    lib.ggml_backend_dev_memory.restype = None
                except (OSError, AttributeError):
                    lib = None
                break
        self._ggml_lib = lib or False
        return lib

    def device_list(self) -> list[dict[str, Any]]:
        """ggml devices: name, description, type (cpu/gpu/igpu/accel), memory free/total in bytes."""
        lib = self._ggml()
        if lib is None:
            return []
        kinds = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}
        out = []
        for i in range(lib.ggml_backend_dev_count()):
            dev = lib.ggml_backend_dev_get(i)
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
            out.append({"name": (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
                        "description": (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                        "type": kinds.get(lib.ggml_backend_dev_type(dev), "other"),
                        "memory_free_bytes": int(free.value), "memory_total_bytes": int(total.value)})
        return out

    def _devices(self) -> list[str]:
        try:
            return [f"{d['name']} ({d['description']}, {d['type']})" for d in self.device_list()]
        except Exception:  # noqa: BLE001 - device listing is informational only
            return []

    def gpu_mem_used_bytes(self) -> int | None:
        """Memory in use on GPU devices (device-wide: total - free), None without a GPU device."""
        try:
            gpus = [d for d in self.device_list() if d["type"] in ("gpu", "igpu")]
        except Exception:  # noqa: BLE001
            return None
        if not gpus:
            return None
        return sum(d["memory_total_bytes"] - d["memory_free_bytes"] for d in gpus)

    # ------------------------------------------------------------------ model
    def load(self, p: dict[str, Any]) -> dict[str, Any]:
        ll = self.ll
        key = json.dumps(p, sort_keys=True)
        if self.model is not None and key == self.model_key:
            return self._model_info(p["model_path"], 0)
        self._free_model()
        path = p["model_path"]
        if not os.path.isfile(path):
            raise WorkerError(f"model file not found: {path}")
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = int(p.get("n_gpu_layers", 0))
        mparams.main_gpu = int(p.get("main_gpu", 0))
        if hasattr(mparams, "use_mmap"):
            mparams.use_mmap = bool(p.get("use_mmap", True))
        # use_extra_bufts=False: runtime workaround for the AMX crash (measured: a default
        # -march=native build segfaults in ggml_backend_amx_mul_mat on quantized models on
        # Sapphire Rapids KVM guests; llama.cpp ggml/src/ggml-cpu/amx)
        if "use_extra_bufts" in {f[0] for f in type(mparams)._fields_}:
            mparams.use_extra_bufts = bool(p.get("repack", True))
        t0 = time.monotonic_ns()
        model = ll.llama_model_load_from_file(path.encode(), mparams)
        load_ns = time.monotonic_ns() - t0
        if not model:
            raise WorkerError(f"llama.cpp could not load {path} (see the worker log above)")
        self.model = model
        self.model_key = key
        self.vocab = ll.llama_model_get_vocab(model)
        self.n_layer = int(ll.llama_model_n_layer(model))
        return self._model_info(path, load_ns)

    def _model_info(self, path: str, load_ns: int) -> dict[str, Any]:
        ll = self.ll
        buf = ctypes.create_string_buffer(512)
        ll.llama_model_desc(self.model, buf, ctypes.sizeof(buf))
        meta: dict[str, str] = {}
        val = ctypes.create_string_buffer(2048)
        for i in range(int(ll.llama_model_meta_count(self.model))):
            k = ctypes.create_string_buffer(256)
            ll.llama_model_meta_key_by_index(self.model, i, k, ctypes.sizeof(k))
            ll.llama_model_meta_val_str_by_index(self.model, i, val, ctypes.sizeof(val))
            key = k.value.decode(errors="replace")
            if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model",):
                continue  # skip the huge vocab arrays
            meta[key] = val.value.decode(errors="replace")
        return {
            "path": path,
            "description": buf.value.decode(errors="replace"),
            "n_layer": self.n_layer,
            "n_params": int(ll.llama_model_n_params(self.model)),
            "size_bytes": int(ll.llama_model_size(self.model)),
            "n_ctx_train": int(ll.llama_model_n_ctx_train(self.model)),
            "n_vocab": int(ll.llama_vocab_n_tokens(self.vocab)),
            "metadata": meta,
            "load_ns": load_ns,
        }

    def _free_model(self) -> None:
        self._free_context()
        if self.model is not None:
            self.ll.llama_model_free(self.model)
        self.model = None
        self.model_key = None
        self.vocab = None

    def _require_model(self) -> None:
        if self.model is None:
            raise WorkerError("no model loaded")

    # ------------------------------------------------------------------ tokenizer
    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        ll = self.ll
        self._require_model()
        raw = text.encode("utf-8")
        n_max = len(raw) + 16
        buf = (ll.llama_token * n_max)()
        n = ll.llama_tokenize(self.vocab, raw, len(raw), buf, n_max, add_bos, False)
        if n < 0:
            n_max = -n
            buf = (ll.llama_token * n_max)()
            n = ll.llama_tokenize(self.vocab, raw, len(raw), buf, n_max, add_bos, False)
        if n < 0:
            raise WorkerError("tokenization failed")
        return list(buf[:n])

    def detokenize(self, tokens: list[int]) -> str:
        ll = self.ll
        self._require_model()
        out = bytearray()
        piece = ctypes.create_string_buffer(256)
        for t in tokens:
            n = ll.llama_token_to_piece(self.vocab, int(t), piece, ctypes.sizeof(piece), 0, False)
            if n > 0:
                out += piece.raw[:n]
        return out.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ context
    def _free_context(self) -> None:
        ll = self.ll
        if self.sampler is not None:
            ll.llama_sampler_free(self.sampler)
            self.sampler = None
        if self.ctx is not None:
            ll.llama_free(self.ctx)
            self.ctx = None
            self.ctx_key = None

    def _ensure_context(self, c: dict[str, Any]) -> None:
        ll = self.ll
        key = json.dumps(c, sort_keys=True)
        if self.ctx is not None and key == self.ctx_key:
            ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
            return
        self._free_context()
        cp = ll.llama_context_default_params()
        cp.n_ctx = int(c["n_ctx"])
        cp.n_batch = int(c["n_batch"])
        cp.n_ubatch = int(c["n_ubatch"])
        cp.n_threads = int(c["n_threads"])
        tb = c.get("n_threads_batch")
        cp.n_threads_batch = int(c["n_threads"] if tb is None else tb)
        cp.flash_attn_type = FLASH_ATTN[c.get("flash_attn", "auto")]
        cp.offload_kqv = bool(c.get("offload_kqv", True))
        cp.no_perf = False
        ctx = ll.llama_init_from_model(self.model, cp)
        if not ctx:
            raise WorkerError("llama.cpp could not create a context (n_ctx/n_batch too large for memory?)")
        self.ctx = ctx
        self.ctx_key = key
        self.sampler = self._make_sampler()

    def _make_sampler(self):
        """Greedy chain with every end-of-generation token banned: generation length is exact."""
        ll = self.ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        eog = [t for t in range(n_vocab) if ll.llama_vocab_is_eog(self.vocab, t)]
        if eog:
            biases = (ll.llama_logit_bias * len(eog))()
            for i, t in enumerate(eog):
                biases[i].token = t
                biases[i].bias = float("-inf")
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(n_vocab, len(eog), biases))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        return chain

    # ------------------------------------------------------------------ the measured run
    def run(self, c: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
        ll = self.ll
        self._require_model()
        prompt = [int(t) for t in r["prompt_tokens"]]
        n_prompt, n_gen = len(prompt), int(r["n_gen"])
        if n_prompt < 1 or n_gen < 1:
            raise WorkerError(f"need at least one prompt token and one generated token (got {n_prompt}, {n_gen})")
        # Only llama-cpp-python's high-level Llama raises ValueError ("Requested tokens ... exceed
        # context window"); the low-level C API has no guard: check it ourselves.
        if n_prompt + n_gen > int(c["n_ctx"]):
            raise WorkerError(f"n_ctx={c['n_ctx']} is smaller than prompt ({n_prompt}) + generation ({n_gen})")
        self._ensure_context(c)
        _maybe_crash({**json.loads(self.model_key or "{}"), **c}, r)
        ctx, smpl = self.ctx, self.sampler
        mem = ll.llama_get_memory(ctx)
        ll.llama_sampler_reset(smpl)
        ll.llama_perf_context_reset(ctx)
        n_batch = int(c["n_batch"])
        min_window_ns = int(float(r.get("min_window_s", 0.0)) * 1e9)
        prompt_arr = (ll.llama_token * n_prompt)(*prompt)
        one = (ll.llama_token * 1)()
        decode, sample, get_one, now = ll.llama_decode, ll.llama_sampler_sample, ll.llama_batch_get_one, time.monotonic_ns
        tok_size = ctypes.sizeof(ll.llama_token)
        base = ctypes.addressof(prompt_arr)
        token_p = ctypes.POINTER(ll.llama_token)

        t_start = now()
        for i in range(0, n_prompt, n_batch):
            n = min(n_batch, n_prompt - i)
            rc = decode(ctx, get_one(ctypes.cast(base + i * tok_size, token_p), n))
            if rc != 0:
                raise WorkerError(f"llama_decode failed on the prompt (rc={rc})")
        first = sample(smpl, ctx, -1)
        t_prefill_end = now()
        times = [t_prefill_end]
        append = times.append
        repeats = 1
        while True:
            tok = first
            for _ in range(n_gen - 1):
                one[0] = tok
                rc = decode(ctx, get_one(one, 1))
                if rc != 0:
                    raise WorkerError(f"llama_decode failed while generating (rc={rc})")
                tok = sample(smpl, ctx, -1)
                append(now())
            if min_window_ns <= 0 or times[-1] - t_start >= min_window_ns or n_gen < 2:
                break
            # --min-window: repeat the decode phase with identical work (same positions): drop the
            # generated tokens from the KV cache and continue from the first sampled token again.
            ll.llama_memory_seq_rm(mem, 0, n_prompt, -1)
            repeats += 1
            append(now())  # the re-sampled first token of this repeat costs nothing: mark it
        t_end = times[-1]
        perf = ll.llama_perf_context(ctx)
        return {
            "ok": True,
            "t_start_ns": t_start,
            "t_prefill_end_ns": t_prefill_end,
            "t_end_ns": t_end,
            "token_t_ns": times,
            "n_prompt_tokens": n_prompt,
            "n_gen_tokens": n_gen * repeats,
            "n_repeats": repeats,
            "perf": {
                "t_load_ms": perf.t_load_ms,
                "t_p_eval_ms": perf.t_p_eval_ms,
                "t_eval_ms": perf.t_eval_ms,
                "n_p_eval": perf.n_p_eval,
                "n_eval": perf.n_eval,
                "n_reused": getattr(perf, "n_reused", 0),
            },
            "gpu_mem_used_bytes": self.gpu_mem_used_bytes(),
        }


def _maybe_crash(c: dict[str, Any], r: dict[str, Any]) -> None:
    spec = r.get("crash") or os.environ.get(CRASH_ENV)
    if not spec:
        return
    how, _, cond = spec.partition("@")
    if cond and cond != "always":
        key, _, value = cond.partition("=")
        if str(c.get(key, r.get(key))) != value:
            return
    if how == "abort":
        os.abort()
    ctypes.string_at(0)  # SIGSEGV in native code


def main() -> int:
    # The protocol channel is a private copy of stdout; fd 1 now goes to stderr, so whatever native
    # code prints cannot corrupt the protocol.
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Ctrl-C in a terminal hits the whole process group: the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        engine = Engine()
    except Exception as exc:  # noqa: BLE001
        reply({"ok": False, "error": f"cannot initialise llama.cpp: {exc}", "fatal": True})
        return 1
    handlers = {
        "hello": lambda m: engine.hello(),
        "load": lambda m: engine.load(m["params"]),
        "tokenize": lambda m: engine.tokenize(m["text"], bool(m.get("add_bos", True))),
        "detokenize": lambda m: engine.detokenize(m["tokens"]),
        "run": lambda m: engine.run(m["ctx"], m["req"]),
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        op = msg.get("op")
        if op == "quit":
            reply({"ok": True, "result": None})
            break
        handler = handlers.get(op)
        if handler is None:
            reply({"ok": False, "error": f"unknown op {op!r}"})
            continue
        try:
            reply({"ok": True, "result": handler(msg)})
        except WorkerError as exc:
            reply({"ok": False, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    try:
        engine._free_model()
    except Exception:  # noqa: BLE001
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
