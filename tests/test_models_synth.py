"""Shape twins: determinism, metadata kept through llama.cpp's quantizer, and real llama.cpp
loading/tokenizing/generating (always in a subprocess: native code never runs in pytest itself)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from energybench.errors import FetchError, ModelError
from energybench.models import SHAPES, get_shape, read_gguf_info, synthesize_model
from energybench.models.synth import quantize_in_subprocess, synthesize_file, write_twin_unquantized
from energybench.models.tokenizer import BYTE, CONTROL, NORMAL, UNKNOWN, build_vocab


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENERGYBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_same_shape_quant_seed_gives_identical_sha256(tmp_path: Path) -> None:
    tiny = get_shape("tiny")
    a = synthesize_file(tiny, tmp_path / "a" / "t.gguf", quant="Q4_K_M", seed=0)
    b = synthesize_file(tiny, tmp_path / "b" / "t.gguf", quant="Q4_K_M", seed=0)
    c = synthesize_file(tiny, tmp_path / "c" / "t.gguf", quant="Q4_K_M", seed=1)
    assert a.sha256 == b.sha256
    assert (tmp_path / "a" / "t.gguf").read_bytes() == (tmp_path / "b" / "t.gguf").read_bytes()
    assert c.sha256 != a.sha256 and c.size_bytes == a.size_bytes
    # no temporary files left next to the result
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["t.gguf"]


def test_quantized_twin_keeps_metadata_and_exact_hyperparameters(tmp_path: Path) -> None:
    tiny = get_shape("tiny")
    r = synthesize_file(tiny, tmp_path / "t.gguf", quant="Q4_K_M", seed=5)
    md = r.info.metadata
    assert md["energybench.synthetic"] is True
    assert md["energybench.shape"] == "tiny"
    assert md["energybench.seed"] == 5
    assert "shape twin" in md["general.name"]
    assert md["general.file_type"] == 15 and r.info.quant == "Q4_K_M"
    assert md["llama.block_count"] == tiny.n_layer
    assert md["llama.embedding_length"] == tiny.n_embd
    assert md["llama.feed_forward_length"] == tiny.n_ff
    assert md["llama.attention.head_count"] == tiny.n_head
    assert md["llama.attention.head_count_kv"] == tiny.n_head_kv
    assert md["llama.context_length"] == tiny.n_ctx
    assert md["llama.rope.freq_base"] == pytest.approx(tiny.rope_theta)
    assert md["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(tiny.rms_eps)
    assert md["tokenizer.ggml.model"] == "llama"
    assert md["tokenizer.ggml.tokens"]["len"] == tiny.n_vocab
    # llama.cpp's own Q4_K_M mix: mostly Q4_K, some Q6_K, vectors F32
    types = r.info.tensor_types()
    assert set(types) == {"Q4_K", "Q6_K", "F32"}
    assert types["F32"] == 2 * tiny.n_layer + 1
    shapes = {t.name: t.shape for t in r.info.tensors}
    assert shapes["token_embd.weight"] == (tiny.n_embd, tiny.n_vocab)
    assert shapes["blk.0.attn_k.weight"] == (tiny.n_embd, tiny.n_head_kv * tiny.head_dim)
    assert shapes["blk.1.ffn_down.weight"] == (tiny.n_ff, tiny.n_embd)
    assert len(r.info.tensors) == len(tiny.tensor_shapes())


@pytest.mark.parametrize("dtype", ["F16", "F32", "BF16"])
def test_unquantized_twins_are_written_directly(tmp_path: Path, dtype: str) -> None:
    tiny = get_shape("tiny")
    r = synthesize_file(tiny, tmp_path / "t.gguf", quant=dtype, seed=0)
    assert r.info.quant == dtype
    matrices = {t.type_name for t in r.info.tensors if len(t.shape) == 2}
    assert matrices == {dtype}
    elem = 4 if dtype == "F32" else 2
    expected = sum(
        (int.__mul__(*s) if len(s) == 2 else s[0]) * (elem if m else 4) for _, s, m in tiny.tensor_shapes()
    )
    assert r.info.data_end - r.info.data_offset >= expected


def test_progress_reports_bytes_of_the_intermediate(tmp_path: Path) -> None:
    tiny = get_shape("tiny")
    seen: list[tuple[int, int | None]] = []
    write_twin_unquantized(tiny, tmp_path / "f16.gguf", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (tiny.f16_bytes(), tiny.f16_bytes())
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_reference_shape_table() -> None:
    t = SHAPES["tinyllama-1.1b"]
    assert (t.n_layer, t.n_embd, t.n_ff, t.n_head, t.n_head_kv, t.head_dim, t.n_vocab, t.n_ctx) == (
        22, 2048, 5632, 32, 4, 64, 32000, 2048)
    assert len(t.tensor_shapes()) == 201  # as in TheBloke's TinyLlama GGUF files
    assert 1.0e9 < t.n_params() < 1.2e9
    q = SHAPES["qwen2.5-0.5b"]
    names = [n for n, _, _ in q.tensor_shapes()]
    assert "blk.0.attn_q.bias" in names and "output.weight" not in names  # QKV bias, tied embeddings
    assert 0.45e9 < q.n_params() < 0.52e9  # "0.49B" on the model card
    ll = SHAPES["llama-3.2-1b"]
    factors = ll.rope_freq_factors()
    assert factors is not None and len(factors) == 32 and factors[0] == 1.0 and factors[-1] == 32.0
    assert 1.2e9 < ll.n_params() < 1.3e9  # 1.24B
    with pytest.raises(ModelError, match="known shapes: tinyllama-1.1b, tiny"):
        get_shape("gpt-5")


def test_vocab_layout() -> None:
    v = build_vocab(4096)
    assert len(v) == 4096 == len(set(v.tokens)) == len(v.scores) == len(v.token_types)
    assert v.tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert v.token_types[:3] == [UNKNOWN, CONTROL, CONTROL]
    assert v.tokens[3] == "<0x00>" and v.tokens[258] == "<0xFF>" and set(v.token_types[3:259]) == {BYTE}
    assert set(v.token_types[259:]) == {NORMAL}
    assert "\u2581the" in v.tokens and "\u2581energy" in v.tokens
    assert v.scores[259:] == sorted(v.scores[259:], reverse=True)
    assert build_vocab(151936).tokens[:4096] == v.tokens  # a prefix: same order for every size


def test_quantizer_failure_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(FetchError, match="llama.cpp quantizer (exited with status|was killed)"):
        quantize_in_subprocess(bad, tmp_path / "out.gguf", "Q4_0", threads=1)
    assert not (tmp_path / "out.gguf").exists()


def test_bad_quant_and_seed(home: Path) -> None:
    with pytest.raises(ModelError, match="unknown quant 'Q7_X'.*Q4_K_M"):
        synthesize_model("tiny", quant="Q7_X")
    with pytest.raises(ModelError, match="unknown shape"):
        synthesize_model("huge")


_LLAMA_SCRIPT = textwrap.dedent("""
    import json, sys
    from llama_cpp import Llama
    llm = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, n_batch=64, verbose=False)
    texts = ["The quick brown fox jumps over the lazy dog.", "Energy per token: 0.61 J at 23.7 W!",
             "naïve café – 日本語 ☕ ünïcödé"]
    out = {"n_vocab": llm.n_vocab(), "round_trip": [], "n_tokens": []}
    for text in texts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=False)
        out["n_tokens"].append(len(toks))
        out["round_trip"].append(llm.detokenize(toks).decode("utf-8"))
    prompt = llm.tokenize(texts[0].encode(), add_bos=True)
    out["bos"] = prompt[0]
    gen = []
    for tok in llm.generate(prompt, temp=0.0):
        gen.append(tok)
        if len(gen) == 4:
            break
    out["generated"] = gen
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_tiny_twin_loads_tokenizes_and_generates_in_llama_cpp(home: Path) -> None:
    m = synthesize_model("tiny")  # default Q4_K_M
    proc = subprocess.run([sys.executable, "-c", _LLAMA_SCRIPT, str(m.path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_vocab"] == 4096
    texts = ["The quick brown fox jumps over the lazy dog.", "Energy per token: 0.61 J at 23.7 W!",
             "naïve café – 日本語 ☕ ünïcödé"]
    for text, back in zip(texts, out["round_trip"], strict=True):
        assert back.strip() == text
    # whole words are single tokens ("▁the", "▁quick" ...), so English is far shorter than bytes
    assert out["n_tokens"][0] < len(texts[0]) // 2
    assert out["bos"] == 1
    assert len(out["generated"]) == 4 and all(0 <= t < 4096 for t in out["generated"])
    assert read_gguf_info(m.path).synthetic
