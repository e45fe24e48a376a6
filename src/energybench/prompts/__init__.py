"""Prompt suites shipped with energybench, and exact-length synthetic prompts.

Suites (``data/<name>.jsonl``, loaded through :mod:`importlib.resources`, so they work from a
wheel) follow the three categories of the original study (github.com/csce585-mlsystems/
Energy-Aware-LLM-Inference-on-Consumer-Hardware, config/p1_runs.yaml):

- ``short_dialogue``: short conversational turns (about 8-25 words);
- ``analytical_reasoning``: medium-length problems that ask for step-by-step reasoning (50-75 words);
- ``narrative_generation``: prompts that ask for long outputs (stories, letters, 600-1000 words).

Each line is ``{"id": ..., "text": ..., "template": ...}``: ``id`` is unique across all suites
(prefix ``sd-``/``ar-``/``ng-``), ``template`` names the pattern the prompt follows (``question``,
``word-problem``, ``story`` ...; recorded as ``prompt_template`` in the original study's CSV).

Synthetic prompts (:func:`exact_prompt_tokens`) are cut from a fixed English text
(``data/filler.txt``) with the model's own tokenizer, so ``n_prompt`` is exact whatever the
vocabulary (llama-bench feeds random token ids instead; real text keeps the attention and cache
behaviour of a real prompt).

Public API::

    list_suites() -> list[str]
    load_suite(name: str) -> list[Prompt]
    get_prompt(suite: str, prompt_id: str) -> Prompt
    filler_text() -> str
    exact_prompt_tokens(tokenize: Callable[[str], list[int]], n: int) -> list[int]
    prompt_text(spec: PromptSpec) -> str
    prompt_tokens(spec: PromptSpec, tokenize: Callable[[str], list[int]]) -> list[int]
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from energybench.errors import ConfigError, UsageError
from energybench.point import PromptSpec

_DATA_PACKAGE = "energybench.prompts"
_DATA_DIR = "data"
_FILLER = "filler.txt"
#: Keys every suite line must have (and no others).
PROMPT_KEYS = ("id", "template", "text")
#: Separator between repetitions of the filler text (a paragraph break).
FILLER_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Prompt:
    """One prompt of a suite (its length in tokens depends on the model's tokenizer)."""

    suite: str
    id: str
    text: str
    template: str

    def spec(self) -> PromptSpec:
        """The :class:`~energybench.point.PromptSpec` that selects this prompt."""
        return PromptSpec(kind="suite", n_prompt=None, suite=self.suite, prompt_id=self.id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_dir() -> Any:
    return resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)


@functools.lru_cache(maxsize=1)
def _suite_names() -> tuple[str, ...]:
    names = [p.name[: -len(".jsonl")] for p in _data_dir().iterdir() if p.name.endswith(".jsonl")]
    return tuple(sorted(names))


def list_suites() -> list[str]:
    """Names of the shipped prompt suites, sorted."""
    return list(_suite_names())


def unknown_suite_message(name: str) -> str:
    """One line naming an unknown suite, the closest known one and every known one."""
    known = list_suites()
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown prompt suite {name!r}{guess} (available: {', '.join(known)})"


@functools.lru_cache(maxsize=None)
def _load_suite(name: str) -> tuple[Prompt, ...]:
    if name not in _suite_names():
        raise ConfigError(unknown_suite_message(name))
    resource = _data_dir().joinpath(f"{name}.jsonl")
    prompts: list[Prompt] = []
    seen: set[str] = set()
    where = f"prompt suite {name!r} ({name}.jsonl)"
    for lineno, line in enumerate(resource.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where} line {lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or set(obj) != set(PROMPT_KEYS):
            raise ConfigError(f"{where} line {lineno}: expected exactly the keys {', '.join(PROMPT_KEYS)}")
        if not all(isinstance(obj[k], str) and obj[k].strip() for k in PROMPT_KEYS):
            raise ConfigError(f"{where} line {lineno}: id, template and text must be non-empty strings")
        if obj["id"] in seen:
            raise ConfigError(f"{where} line {lineno}: duplicate prompt id {obj['id']!r}")
        seen.add(obj["id"])
        prompts.append(Prompt(suite=name, id=obj["id"], text=obj["text"], template=obj["template"]))
    if not prompts:
        raise ConfigError(f"{where} is empty")
    return tuple(prompts)


def load_suite(name: str) -> list[Prompt]:
    """The prompts of suite ``name`` in file order. Unknown name: :class:`ConfigError` (exit 2)."""
    return list(_load_suite(name))


def get_prompt(suite: str, prompt_id: str) -> Prompt:
    """Prompt ``prompt_id`` of ``suite``; :class:`ConfigError` naming the known ids otherwise."""
    for p in _load_suite(suite):
        if p.id == prompt_id:
            return p
    ids = [p.id for p in _load_suite(suite)]
    close = difflib.get_close_matches(prompt_id, ids, n=1, cutoff=0.5)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"prompt suite {suite!r} has no prompt {prompt_id!r}{guess} (ids: {', '.join(ids)})")


@functools.lru_cache(maxsize=1)
def filler_text() -> str:
    """The fixed English text synthetic prompts are cut from (original prose, ~570 words)."""
    return _data_dir().joinpath(_FILLER).read_text(encoding="utf-8").strip()


def exact_prompt_tokens(tokenize: Callable[[str], list[int]], n: int) -> list[int]:
    """Exactly ``n`` token ids of English text, made with the model's own tokenizer.

    The filler text is repeated (joined by a blank line) until ``tokenize`` yields at least ``n``
    tokens, and the first ``n`` are returned. The text is tokenized *as one string*, so the ids
    are what the model's tokenizer produces for running prose; cutting the sequence can split a
    word, which is harmless for a benchmark prompt. Deterministic: same tokenizer, same ids.

    BOS: ``tokenize`` is used as given. If it adds a BOS token (llama.cpp's default,
    ``backend.tokenize(text, add_bos=True)``), the BOS is the first id and counts toward ``n``
    — the convention of llama-bench, whose ``-p 512`` prompt is 512 tokens including BOS. For
    ``n`` content tokens without BOS, pass ``lambda s: backend.tokenize(s, add_bos=False)``.

    Raises :class:`UsageError` if ``n < 1`` or the tokenizer yields no tokens for the text.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"n_prompt = {n!r}: a synthetic prompt needs at least 1 token")
    filler = filler_text()
    per_copy = len(tokenize(filler))
    if per_copy < 2:
        raise UsageError(f"the tokenizer produced {per_copy} token(s) for {len(filler)} characters of English "
                         "text; cannot build a synthetic prompt with it")
    # Tokens per copy when copies are joined (a BOS, if any, appears once): per_copy - 1 is a
    # lower bound; double the copies until the length is reached.
    copies = max(1, -(-n // (per_copy - 1)))
    previous = -1
    while True:
        tokens = tokenize(FILLER_SEPARATOR.join([filler] * copies))
        if len(tokens) >= n:
            return list(tokens[:n])
        if len(tokens) <= previous:  # the tokenizer stopped growing: never loop forever
            raise UsageError(f"the tokenizer truncates its input at {len(tokens)} tokens; "
                             f"cannot build a {n}-token prompt with it")
        previous = len(tokens)
        copies *= 2


def prompt_text(spec: PromptSpec) -> str:
    """The text of a suite or literal-text prompt (a synthetic prompt has no text of its own)."""
    if spec.kind == "suite":
        if not spec.suite or not spec.prompt_id:
            raise ConfigError("a suite prompt needs both suite and prompt_id")
        return get_prompt(spec.suite, spec.prompt_id).text
    if spec.kind == "text":
        if not spec.text:
            raise ConfigError("a text prompt needs non-empty text")
        return spec.text
    raise ConfigError(f"prompt kind {spec.kind!r} has no fixed text (synthetic prompts are built "
                      "per model with exact_prompt_tokens)")


def prompt_tokens(spec: PromptSpec, tokenize: Callable[[str], list[int]]) -> list[int]:
    """Token ids for any :class:`PromptSpec`: synthetic → exactly ``spec.n_prompt`` ids
    (:func:`exact_prompt_tokens`), suite/text → ``tokenize(text)``. BOS as ``tokenize`` does it."""
    if spec.kind == "synthetic":
        if spec.n_prompt is None:
            raise ConfigError("a synthetic prompt needs n_prompt")
        return exact_prompt_tokens(tokenize, spec.n_prompt)
    return list(tokenize(prompt_text(spec)))


__all__ = [
    "FILLER_SEPARATOR", "PROMPT_KEYS", "Prompt", "exact_prompt_tokens", "filler_text", "get_prompt",
    "list_suites", "load_suite", "prompt_text", "prompt_tokens", "unknown_suite_message",
]
