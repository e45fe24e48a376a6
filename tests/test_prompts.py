"""Shipped prompt suites and exact-length synthetic prompts (stand-in tokenizer and real llama.cpp)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from energybench.errors import ConfigError, UsageError
from energybench.point import PromptSpec
from energybench.prompts import (
    Prompt,
    exact_prompt_tokens,
    filler_text,
    get_prompt,
    list_suites,
    load_suite,
    prompt_text,
    prompt_tokens,
)

SUITES = ["analytical_reasoning", "narrative_generation", "short_dialogue"]


class WhitespaceTokenizer:
    """A deterministic stand-in: one id per whitespace-separated word, optional BOS (id 1)."""

    def __init__(self, *, add_bos: bool = False, max_tokens: int | None = None) -> None:
        self.vocab: dict[str, int] = {}
        self.add_bos = add_bos
        self.max_tokens = max_tokens
        self.calls = 0

    def __call__(self, text: str) -> list[int]:
        self.calls += 1
        ids = [self.vocab.setdefault(w, len(self.vocab) + 2) for w in text.split()]
        ids = ([1] if self.add_bos else []) + ids
        return ids[: self.max_tokens] if self.max_tokens is not None else ids


# ----------------------------------------------------------------------------- suites


def test_list_suites() -> None:
    assert list_suites() == SUITES


@pytest.mark.parametrize("name", SUITES)
def test_suite_loads_with_nonempty_unique_prompts(name: str) -> None:
    prompts = load_suite(name)
    assert 8 <= len(prompts) <= 15
    assert all(isinstance(p, Prompt) and p.suite == name for p in prompts)
    assert all(p.text.strip() and p.template.strip() and p.id.strip() for p in prompts)
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({p.text for p in prompts}) == len(prompts)


def test_ids_are_unique_across_suites() -> None:
    ids = [p.id for s in list_suites() for p in load_suite(s)]
    assert len(ids) == len(set(ids))


def test_lengths_follow_the_categories() -> None:
    words = {s: sum(len(p.text.split()) for p in load_suite(s)) / len(load_suite(s)) for s in SUITES}
    assert words["short_dialogue"] < 30 < words["analytical_reasoning"]
    assert max(len(p.text.split()) for p in load_suite("short_dialogue")) <= 30
    # narrative prompts ask for long outputs: each names a length of several hundred words
    for p in load_suite("narrative_generation"):
        lengths = [int(n) for n in re.findall(r"(\d{3,4}) words", p.text)]
        assert lengths and max(lengths) >= 500, p.id


def test_suite_files_are_package_resources() -> None:
    data = resources.files("energybench.prompts").joinpath("data")
    names = {p.name for p in data.iterdir()}
    assert {f"{s}.jsonl" for s in SUITES} | {"filler.txt"} <= names


def test_load_suite_returns_a_copy() -> None:
    a = load_suite("short_dialogue")
    a.clear()
    assert len(load_suite("short_dialogue")) == 10


def test_unknown_suite_and_prompt() -> None:
    with pytest.raises(ConfigError, match=r"unknown prompt suite 'narrative'; did you mean 'narrative_generation'\?"):
        load_suite("narrative")
    with pytest.raises(ConfigError, match=r"has no prompt 'sd-11'.*sd-01"):
        get_prompt("short_dialogue", "sd-11")
    assert get_prompt("analytical_reasoning", "ar-10").template == "trade-off"


def test_prompt_spec_and_text() -> None:
    p = get_prompt("narrative_generation", "ng-02")
    spec = p.spec()
    assert spec == PromptSpec(kind="suite", n_prompt=None, suite="narrative_generation", prompt_id="ng-02")
    assert prompt_text(spec) == p.text
    assert prompt_text(PromptSpec(kind="text", n_prompt=None, text="hi there")) == "hi there"
    with pytest.raises(ConfigError, match="no fixed text"):
        prompt_text(PromptSpec(kind="synthetic", n_prompt=8))


# ----------------------------------------------------------------------------- exact tokens


def test_filler_is_english_prose() -> None:
    text = filler_text()
    assert len(text.split()) > 400
    assert text.isascii() and "river" in text


@pytest.mark.parametrize("n", [1, 2, 7, 100, 571, 572, 573, 1000, 4096])
@pytest.mark.parametrize("bos", [False, True])
def test_exact_prompt_tokens_whitespace_tokenizer(n: int, bos: bool) -> None:
    tok = WhitespaceTokenizer(add_bos=bos)
    ids = exact_prompt_tokens(tok, n)
    assert len(ids) == n
    if bos:
        assert ids[0] == 1 and ids.count(1) == 1  # one BOS, counted in n
    # deterministic, and a prefix of any longer prompt from the same text
    again = exact_prompt_tokens(WhitespaceTokenizer(add_bos=bos), n)
    assert again == ids
    longer = exact_prompt_tokens(WhitespaceTokenizer(add_bos=bos), n + 50)
    assert longer[:n] == ids
    assert tok.calls <= 6  # no token-by-token search


def test_exact_prompt_tokens_decodes_to_the_filler() -> None:
    tok = WhitespaceTokenizer()
    ids = exact_prompt_tokens(tok, 1200)
    inverse = {v: k for k, v in tok.vocab.items()}
    words = [inverse[i] for i in ids]
    filler_words = filler_text().split()
    assert words[: len(filler_words)] == filler_words
    assert words[len(filler_words):] == (filler_words * 3)[: 1200 - len(filler_words)]


def test_exact_prompt_tokens_rejects_bad_input() -> None:
    with pytest.raises(UsageError, match="at least 1 token"):
        exact_prompt_tokens(WhitespaceTokenizer(), 0)
    with pytest.raises(UsageError, match="at least 1 token"):
        exact_prompt_tokens(WhitespaceTokenizer(), True)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="produced 0 token"):
        exact_prompt_tokens(lambda s: [], 5)
    with pytest.raises(UsageError, match="truncates its input at 300 tokens"):
        exact_prompt_tokens(WhitespaceTokenizer(max_tokens=300), 1000)


def test_prompt_tokens_for_every_kind() -> None:
    tok = WhitespaceTokenizer(add_bos=True)
    assert len(prompt_tokens(PromptSpec(kind="synthetic", n_prompt=33), tok)) == 33
    p = get_prompt("short_dialogue", "sd-08")
    assert prompt_tokens(p.spec(), tok) == tok(p.text)
    assert prompt_tokens(PromptSpec(kind="text", n_prompt=None, text="a b c"), tok) == tok("a b c")


# ----------------------------------------------------------------------------- real llama.cpp


@pytest.fixture(scope="module")
def llama_backend(request: pytest.FixtureRequest):
    """A real llama.cpp backend (worker subprocess) with the tiny shape twin loaded."""
    try:
        gguf = request.getfixturevalue("tiny_gguf")
    except (pytest.FixtureLookupError, ImportError) as exc:  # no models module / fixture yet
        pytest.skip(f"no tiny GGUF available: {exc}")
    from energybench.backends import LoadParams, create_backend

    backend = create_backend("llama.cpp")
    try:
        backend.load(LoadParams(model_path=str(gguf)))
        yield backend
    finally:
        backend.close()


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 64, 700])
def test_exact_prompt_tokens_real_llama_tokenizer(llama_backend, n: int) -> None:
    with_bos = exact_prompt_tokens(lambda s: llama_backend.tokenize(s, add_bos=True), n)
    assert len(with_bos) == n
    bos = llama_backend.tokenize("", add_bos=True)
    assert len(bos) == 1 and with_bos[0] == bos[0] and with_bos.count(bos[0]) == 1
    without = exact_prompt_tokens(lambda s: llama_backend.tokenize(s, add_bos=False), n)
    assert len(without) == n and bos[0] not in without
    if n > 1:
        text = llama_backend.detokenize(without)
        assert filler_text().startswith(text.strip()[:40])
    assert exact_prompt_tokens(lambda s: llama_backend.tokenize(s, add_bos=True), n) == with_bos
