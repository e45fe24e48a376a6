"""Preflight: impossible work is refused from the shape table or a GGUF header, before any load.

The numbers asserted here are the shape table's (src/energybench/models/shapes.py): ``tiny`` and
``tinyllama-1.1b`` both have a 2048-token training context.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from energybench.errors import ConfigError, ModelError
from energybench.point import PromptSpec, RunPoint
from energybench.preflight import (
    ModelFacts,
    check_context,
    check_memory,
    check_point,
    kv_cache_bytes,
    model_facts,
    shape_facts,
)

MiB = 1 << 20


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ENERGYBENCH_HOME for one test (the session's may already cache synthetic:tiny)."""
    home = tmp_path / "eb-home"
    monkeypatch.setenv("ENERGYBENCH_HOME", str(home))
    return home


def _nothing_cached(home: Path) -> bool:
    models = home / "models"
    return not models.exists() or not any(models.rglob("*"))


def write_gguf(path: Path, *, context_length: int | None = 4096, key_length: int | None = None,
               value_length: int | None = None, head_count_kv: int | list[int] | None = None) -> Path:
    """A minimal llama GGUF (3 layers, 8 heads, embedding 512, one small tensor) written with ``gguf``."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch="llama")
    if context_length is not None:
        w.add_context_length(context_length)
    w.add_block_count(3)
    w.add_embedding_length(512)
    w.add_head_count(8)
    if head_count_kv is not None:
        w.add_head_count_kv(head_count_kv)
    if key_length is not None:
        w.add_key_length(key_length)
    if value_length is not None:
        w.add_value_length(value_length)
    w.add_tensor("token_embd.weight", np.zeros((4, 512), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ----------------------------------------------------------------------------- facts


def test_shape_table_facts_without_synthesizing(fresh_home: Path) -> None:
    tiny = model_facts("synthetic:tiny")
    assert tiny == ModelFacts(n_ctx_train=2048, n_layer=2, n_head_kv=2, head_dim=64, head_dim_v=64,
                              size_bytes=None, source="shape table")
    tinyllama = model_facts("synthetic:tinyllama-1.1b:Q4_0")
    assert tinyllama == ModelFacts(n_ctx_train=2048, n_layer=22, n_head_kv=4, head_dim=64, head_dim_v=64,
                                   size_bytes=None, source="shape table")
    assert model_facts("synthetic:qwen2.5-0.5b").n_ctx_train == 32768
    assert model_facts("synthetic:llama-3.2-1b:Q8_0@7").n_ctx_train == 131072
    assert _nothing_cached(fresh_home)


def test_unknown_models_have_no_facts_and_nothing_is_fetched(fresh_home: Path, tmp_path: Path) -> None:
    for ref in ("tinyllama-1.1b-chat:Q4_K_M", "hf:owner/repo/model.gguf", "https://example.invalid/m.gguf",
                str(tmp_path / "missing.gguf"), "no-such-cached-model"):
        assert model_facts(ref) is None, ref
    assert _nothing_cached(fresh_home)


def test_malformed_reference_is_the_resolver_error(fresh_home: Path) -> None:
    with pytest.raises(ModelError, match="unknown shape"):
        model_facts("synthetic:no-such-shape")


def test_gguf_header_of_a_real_twin(tiny_gguf: Path) -> None:
    by_path = model_facts(str(tiny_gguf))
    assert by_path is not None and by_path.source == "GGUF header"
    assert by_path.size_bytes == tiny_gguf.stat().st_size
    table = shape_facts("tiny")
    assert (by_path.n_ctx_train, by_path.n_layer, by_path.n_head_kv, by_path.head_dim, by_path.head_dim_v) == \
        (table.n_ctx_train, table.n_layer, table.n_head_kv, table.head_dim, table.head_dim_v) == (2048, 2, 2, 64, 64)
    # the cached twin (the session's home holds it) is read from its file, with its real size
    assert model_facts("synthetic:tiny") == by_path


def test_gguf_header_defaults_and_explicit_lengths(tmp_path: Path) -> None:
    plain = model_facts(str(write_gguf(tmp_path / "plain.gguf")))
    assert plain is not None
    assert (plain.n_ctx_train, plain.n_layer, plain.n_head_kv, plain.head_dim, plain.head_dim_v) == (4096, 3, 8, 64, 64)
    gqa = model_facts(str(write_gguf(tmp_path / "gqa.gguf", key_length=128, value_length=96, head_count_kv=2)))
    assert gqa is not None and (gqa.n_embd_k_gqa, gqa.n_embd_v_gqa) == (256, 192)
    assert kv_cache_bytes(gqa, 1000) == 3 * 1000 * (256 + 192) * 2


def test_gguf_header_without_context_or_with_per_layer_heads(tmp_path: Path) -> None:
    assert model_facts(str(write_gguf(tmp_path / "noctx.gguf", context_length=None))) is None
    per_layer = model_facts(str(write_gguf(tmp_path / "layers.gguf", head_count_kv=[2, 4, 8])))
    assert per_layer is not None and per_layer.n_head_kv is None
    assert kv_cache_bytes(per_layer, 4096) is None


def test_unreadable_gguf_is_unknown(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    assert model_facts(str(bad)) is None


# ----------------------------------------------------------------------------- context


def test_context_boundary_is_exact() -> None:
    tiny = shape_facts("tiny")
    assert check_context(2040, 8, None, tiny, what="tiny") == []
    with pytest.raises(ConfigError) as err:
        check_context(2041, 8, None, tiny, what="tiny")
    assert err.value.exit_code == 2
    line = err.value.one_line()
    assert "2041" in line and "2049" in line and "2048" in line and "shape table" in line
    assert "--n-prompt" in line and "longer context" in line and "\n" not in line


def test_unknown_prompt_length_checks_the_generation_alone() -> None:
    tiny = shape_facts("tiny")
    assert check_context(None, 2048, None, tiny, what="tiny") == []
    with pytest.raises(ConfigError, match="unknown length"):
        check_context(None, 2049, None, tiny, what="tiny")


def test_explicit_ctx_beyond_training_is_a_warning() -> None:
    tiny = shape_facts("tiny")
    assert check_context(100, 8, 2048, tiny, what="tiny") == []
    (warning,) = check_context(100, 8, 4096, tiny, what="tiny")
    assert "n_ctx=4096" in warning and "2048" in warning


def test_unknown_facts_check_nothing() -> None:
    assert check_context(100_000, 8, 1_000_000, None, what="x") == []
    check_memory(None, 1_000_000, 0, 1)
    point = RunPoint(model="hf:o/r/f.gguf", n_gen=8, prompt=PromptSpec(n_prompt=100_000))
    assert check_point(point, None, available_bytes=1) == []


# ----------------------------------------------------------------------------- memory


def test_kv_cache_bytes_formula() -> None:
    # 2 (K and V) * n_layer * n_ctx * n_head_kv * head_dim * 2 bytes (f16)
    assert kv_cache_bytes(shape_facts("tiny"), 2048) == 2 * 2 * 2048 * 2 * 64 * 2 == 2 * MiB
    assert kv_cache_bytes(shape_facts("tinyllama-1.1b"), 2048) == 44 * MiB  # llama.cpp: "KV self size = 44.00 MiB"
    assert kv_cache_bytes(shape_facts("tiny"), 2048, type_bytes=1) == MiB


def test_memory_boundary_on_cpu(tiny_gguf: Path) -> None:
    facts = model_facts(str(tiny_gguf))
    assert facts is not None and facts.size_bytes
    need = facts.size_bytes + 2 * MiB  # + the KV cache at n_ctx 2048
    check_memory(facts, 2048, 0, need)
    with pytest.raises(ConfigError) as err:
        check_memory(facts, 2048, 0, need - 1, what="synthetic:tiny n_prompt=2000 n_gen=8")
    line = err.value.one_line()
    assert "synthetic:tiny n_prompt=2000 n_gen=8" in line and "KV cache 2.0 MiB" in line
    assert f"model {facts.size_bytes / MiB:.1f} MiB" in line and "n_ctx" in line
    # offloading: GPU memory is not known here, nothing is checked
    check_memory(facts, 2048, 1, 1)
    check_memory(facts, 2048, -1, 1)


def test_memory_with_unknown_size_checks_the_kv_cache_alone() -> None:
    big = shape_facts("llama-3.2-1b")  # 4 GiB of f16 KV cache at its full 131072-token context
    check_memory(big, 131072, 0, 4 << 30)
    with pytest.raises(ConfigError, match=r"4\.00 GiB.*size unknown"):
        check_memory(big, 131072, 0, (4 << 30) - 1)


# ----------------------------------------------------------------------------- points


def test_check_point_refuses_the_long_prompt_by_name() -> None:
    point = RunPoint(model="synthetic:tiny", n_gen=8, prompt=PromptSpec(n_prompt=100_000))
    with pytest.raises(ConfigError) as err:
        check_point(point, shape_facts("tiny"))
    assert err.value.one_line().startswith("synthetic:tiny n_prompt=100000 n_gen=8: prompt (100000 tokens)")


def test_check_point_memory_uses_the_resolved_context() -> None:
    facts = shape_facts("tinyllama-1.1b")  # size unknown: KV only; 200 + 56 tokens → n_ctx 256 → 5.5 MiB
    point = RunPoint(model="synthetic:tinyllama-1.1b", n_gen=56, prompt=PromptSpec(n_prompt=200))
    assert check_point(point, facts, available_bytes=kv_cache_bytes(facts, 256)) == []
    with pytest.raises(ConfigError, match="n_ctx=256"):
        check_point(point, facts, available_bytes=kv_cache_bytes(facts, 256) - 1)
    assert check_point(point.with_(n_gpu_layers=-1), facts, available_bytes=1) == []
    assert check_point(point, facts) == []  # the real available memory holds 5.5 MiB


def test_check_point_suite_prompt_warns_on_explicit_ctx() -> None:
    point = RunPoint(model="synthetic:tiny", n_gen=8, n_ctx=4096,
                     prompt=PromptSpec(kind="suite", n_prompt=None, suite="s", prompt_id="p"))
    (warning,) = check_point(point, shape_facts("tiny"), available_bytes=1 << 40)
    assert warning.startswith("synthetic:tiny prompt s/p n_gen=8: n_ctx=4096")
