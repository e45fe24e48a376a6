"""The llama.cpp backend: real llama.cpp in the worker process, on the tiny shape twin."""

from __future__ import annotations

import signal

import pytest

from energybench.backends import ContextParams, GenerationRequest, LoadParams, create_backend
from energybench.backends.llamacpp import LlamaCppBackend, describe_returncode
from energybench.errors import BackendError, UsageError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(tiny_gguf):
    b = create_backend("llama.cpp")
    b.load(LoadParams(model_path=str(tiny_gguf)))
    yield b
    b.close()


def _prompt(backend, n: int) -> tuple[int, ...]:
    toks = backend.tokenize("The quick brown fox jumps over the lazy dog. " * 20)
    assert len(toks) >= n
    return tuple(toks[:n])


def test_info_reports_build(backend):
    info = backend.info()
    assert info.name == "llama.cpp"
    assert info.version.count(".") >= 2
    assert "CPU" in info.system_info or "AVX" in info.system_info or "NEON" in info.system_info
    assert isinstance(info.supports_gpu_offload, bool)


def test_model_info(backend, tiny_gguf):
    mi = backend.model_info
    assert mi is not None and mi.path == str(tiny_gguf)
    assert mi.n_layer >= 1 and mi.n_params > 0 and mi.n_vocab > 256
    assert mi.metadata.get("general.architecture") == "llama"


def test_tokenize_roundtrip(backend):
    text = "Energy per token, measured honestly."
    toks = backend.tokenize(text)
    assert len(toks) > 3
    assert backend.detokenize(toks).strip() == text


def test_run_generates_exactly_n_tokens_with_monotonic_timestamps(backend):
    prompt = _prompt(backend, 40)
    res = backend.run(ContextParams(n_ctx=256, n_threads=1, n_batch=16, n_ubatch=16),
                      GenerationRequest(prompt_tokens=prompt, n_gen=17))
    assert res.ok, res.error
    assert res.n_prompt_tokens == 40 and res.n_gen_tokens == 17 and len(res.token_t_ns) == 17
    assert res.t_start_ns < res.t_prefill_end_ns == res.token_t_ns[0] <= res.t_end_ns == res.token_t_ns[-1]
    assert all(a < b for a, b in zip(res.token_t_ns, res.token_t_ns[1:], strict=False))
    # llama.cpp's own counters agree with ours on the work done (prompt in 3 batches of <= 16)
    assert res.perf.n_p_eval == 40
    assert res.perf.n_eval == 16
    assert res.perf.t_eval_ms > 0


def test_context_reused_across_runs_and_kv_cleared(backend):
    prompt = _prompt(backend, 30)
    ctx = ContextParams(n_ctx=256, n_threads=1)
    a = backend.run(ctx, GenerationRequest(prompt_tokens=prompt, n_gen=8))
    b = backend.run(ctx, GenerationRequest(prompt_tokens=prompt, n_gen=8))
    assert a.ok and b.ok
    # a stale KV cache would make the second prompt fail (positions) or grow n_p_eval
    assert b.perf.n_p_eval == 30


def test_min_window_repeats_decode(backend):
    prompt = _prompt(backend, 16)
    res = backend.run(ContextParams(n_ctx=256, n_threads=1),
                      GenerationRequest(prompt_tokens=prompt, n_gen=4, min_window_s=0.3))
    assert res.ok, res.error
    assert res.n_repeats > 1
    assert res.n_gen_tokens == 4 * res.n_repeats == len(res.token_t_ns)
    assert (res.t_end_ns - res.t_start_ns) >= 0.3e9


def test_n_ctx_too_small_is_rejected_before_llama_cpp(backend):
    with pytest.raises(UsageError, match="n_ctx=32 is smaller than prompt"):
        backend.run(ContextParams(n_ctx=32, n_threads=1), GenerationRequest(prompt_tokens=_prompt(backend, 30), n_gen=8))


def test_same_load_params_do_not_reload(backend, tiny_gguf):
    loads = backend.model_loads
    backend.load(LoadParams(model_path=str(tiny_gguf)))
    assert backend.model_loads == loads


def test_missing_model_is_a_clear_error(tmp_path):
    with LlamaCppBackend() as b, pytest.raises(BackendError, match="model file not found"):
        b.load(LoadParams(model_path=str(tmp_path / "nope.gguf")))


@pytest.mark.parametrize("how,sig", [("segv", signal.SIGSEGV), ("abort", signal.SIGABRT)])
def test_native_crash_is_a_failed_run_and_the_next_run_works(tiny_gguf, how, sig):
    with LlamaCppBackend() as b:
        b.load(LoadParams(model_path=str(tiny_gguf)))
        prompt = tuple(b.tokenize("hello world")[:4])
        pid = b.worker_pid
        res = b.run(ContextParams(n_ctx=128, n_threads=1), GenerationRequest(prompt_tokens=prompt, n_gen=4, crash=how))
        assert not res.ok
        assert res.returncode == -sig
        assert sig.name in (res.error or "")
        assert res.stderr_tail  # the worker's log tail travels with the failure
        # a fresh worker, the model reloaded transparently
        res2 = b.run(ContextParams(n_ctx=128, n_threads=1), GenerationRequest(prompt_tokens=prompt, n_gen=4))
        assert res2.ok, res2.error
        assert b.worker_pid != pid and b.worker_starts == 2 and b.model_loads == 2


def test_crash_hook_from_environment_matches_only_its_condition(tiny_gguf):
    with LlamaCppBackend(env={"ENERGYBENCH_TEST_CRASH": "segv@n_threads=2"}) as b:
        b.load(LoadParams(model_path=str(tiny_gguf)))
        prompt = tuple(b.tokenize("hello world")[:4])
        ok = b.run(ContextParams(n_ctx=128, n_threads=1), GenerationRequest(prompt_tokens=prompt, n_gen=2))
        bad = b.run(ContextParams(n_ctx=128, n_threads=2), GenerationRequest(prompt_tokens=prompt, n_gen=2))
        assert ok.ok and not bad.ok and bad.returncode == -signal.SIGSEGV


def test_unresponsive_worker_is_killed_after_timeout(tiny_gguf):
    with LlamaCppBackend(run_timeout_s=0.05) as b:
        b.load(LoadParams(model_path=str(tiny_gguf)))
        prompt = tuple(b.tokenize("hello world " * 10)[:16])
        res = b.run(ContextParams(n_ctx=2048, n_threads=1), GenerationRequest(prompt_tokens=prompt, n_gen=2000))
        assert not res.ok and "did not answer" in (res.error or "")


def test_describe_returncode():
    assert "SIGSEGV" in describe_returncode(-11)
    assert describe_returncode(3) == "exited with status 3"
    assert describe_returncode(None) == "is unresponsive"
