"""A deterministic SentencePiece-style vocabulary for shape twins (``tokenizer.ggml.model = "llama"``).

Layout, as in Llama/TinyLlama's own vocabulary: ``<unk>`` (0), ``<s>`` (1), ``</s>`` (2), the 256
byte tokens ``<0x00>``…``<0xFF>`` (type BYTE, so any UTF-8 text round-trips through byte fallback),
then normal pieces with decreasing scores: ``▁`` and the printable ASCII characters, common English
words with ``▁`` and every prefix of them (so llama.cpp's merge-based SPM tokenizer can build them
up), then letter n-grams until the vocabulary has exactly the shape's size.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

# llama.cpp token types (llama_token_type / gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

SPACE = "\u2581"  # '▁', SentencePiece's word-boundary marker

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2

_WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this from or had by
not word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look
more day could go come did number sound no most people my over know water than call first who may down side
been now find any new work part take get place made live where after back little only round man year came
show every good me give our under name very through just form sentence great think say help low line differ
turn cause much mean before move right boy old too same tell does set three want air well also play small end
put home read hand port large spell add even land here must big high such follow act why ask men change went
light kind off need house picture try us again animal point mother world near build self earth father head
stand own page should country found answer school grow study still learn plant cover food sun four between
state keep eye never last let thought city tree cross farm hard start might story saw far sea draw left late
run while press close night real life few north open seem together next white children begin got walk example
ease paper group always music those both mark often letter until mile river car feet care second book carry
took science eat room friend began idea fish mountain stop once base hear horse cut sure watch color face wood
main enough plain girl usual young ready above ever red list though feel talk bird soon body dog family direct
pose leave song measure door product black short numeral class wind question happen complete ship area half rock
order fire south problem piece told knew pass since top whole king space heard best hour better true during
hundred five remember step early hold west ground interest reach fast verb sing listen six table travel less
morning ten simple several vowel toward war lay against pattern slow center love person money serve appear road
map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait
plan figure star box noun field rest correct able pound done beauty drive stood contain front teach week final
gave green oh quick develop ocean warm free minute strong special mind behind clear tail produce fact street inch
multiply nothing course stay wheel full force blue object decide surface deep moon island foot system busy test
record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate hot miss
brought heat snow tire bring yes distant fill east paint language among energy model token latency benchmark
measure inference joule watt second battery processor memory energybench llama
""".split()


@dataclass(frozen=True)
class Vocab:
    """Parallel arrays for ``tokenizer.ggml.tokens`` / ``scores`` / ``token_type``."""

    tokens: list[str]
    scores: list[float]
    token_types: list[int]
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    unk_id: int = UNK_ID

    def __len__(self) -> int:
        return len(self.tokens)


def _pieces() -> itertools.chain[str]:
    """All candidate normal pieces in priority order (may repeat; the caller dedupes)."""
    chars = [SPACE] + [c for c in string.printable if c not in string.whitespace]

    def prefixes(word: str) -> list[str]:
        return [word[:k] for k in range(2, len(word) + 1)]

    def words() -> itertools.chain[str]:
        # word-initial lowercase words first (what English text needs most), then the same words
        # inside a word (no ▁), then capitalised; every prefix is kept so SPM merges can reach them
        return itertools.chain(
            itertools.chain.from_iterable(prefixes(SPACE + w) for w in _WORDS),
            itertools.chain.from_iterable(prefixes(w) for w in _WORDS),
            itertools.chain.from_iterable(prefixes(SPACE + w.capitalize()) for w in _WORDS),
        )

    lower = string.ascii_lowercase

    def ngrams(n: int) -> itertools.chain[str]:
        grams = ("".join(t) for t in itertools.product(lower, repeat=n))
        return itertools.chain.from_iterable((g, SPACE + g) for g in grams)

    return itertools.chain(chars, words(), ngrams(2), ngrams(3), ngrams(4), ngrams(5))


def build_vocab(n_vocab: int) -> Vocab:
    """A vocabulary of exactly ``n_vocab`` tokens (deterministic; >= 512)."""
    if n_vocab < 512:
        raise ValueError(f"n_vocab {n_vocab} too small for a SentencePiece-style vocabulary (>= 512)")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    scores = [0.0] * len(tokens)
    seen = set(tokens)
    rank = 0
    for piece in _pieces():
        if len(tokens) >= n_vocab:
            break
        if piece in seen:
            continue
        seen.add(piece)
        tokens.append(piece)
        types.append(NORMAL)
        rank += 1
        scores.append(-float(rank))
    if len(tokens) < n_vocab:  # pragma: no cover - 5-grams give > 20 M pieces
        raise ValueError(f"cannot fill a vocabulary of {n_vocab}")
    return Vocab(tokens=tokens, scores=scores, token_types=types)
