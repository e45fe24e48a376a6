"""Short names for real models on Hugging Face: ``tinyllama-1.1b-chat:Q4_K_M``.

Checksums are pinned only where they were found published, with the source named beside them;
for every other file the manifest records the sha256 computed at download.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from energybench.errors import ModelError


@dataclass(frozen=True)
class Alias:
    """A model family on the Hub: ``{name}:{QUANT}`` → ``hf:{repo}/{file_pattern with QUANT}``."""

    name: str
    repo: str
    file_pattern: str  # "{quant}" is replaced by the quant name
    quants: tuple[str, ...]
    default_quant: str
    revision: str | None = None  # pinned commit (None: the repo's main branch)
    #: quant → (sha256, size_bytes), only values found published
    pinned: dict[str, tuple[str, int]] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""

    def filename(self, quant: str) -> str:
        return self.file_pattern.format(quant=quant)


# TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF. Revision 52e7645ba7c309695bec7ac98f4f005b139cf465 is
# the commit that several independent projects pin (e.g. a llama.cpp fork's model notes and a
# model catalog with resolve/52e7645.../ URLs); the checksums below are its Git LFS oids:
#   Q4_0   da3087fb… 637,699,456 B — HF cache blob name models--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF/blobs/da3087fb…
#          in a published test tree, a Go model catalog, and a detllm intake log (tensors=201, F32=45 Q4_0=155 Q6_K=1)
#   Q4_K_M 9fecc3b3… 668,788,096 B — several catalogs/benchmarks pinning resolve/52e7645…/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf
#   Q2_K   030a469a… 483,116,416 B — an HF tree-API fixture ("lfs": {"oid": …}) and benchmark reports
#   Q8_0   a4c9bb1d… 1,170,781,568 B — a model catalog at revision 52e7645… and a benchmark's checksum list
#   Q3_K_M ec461c4d… 550,819,200 B — the same model catalog at revision 52e7645…
# Not pinned (not found published): Q3_K_S Q3_K_L Q4_K_S Q5_0 Q5_K_S Q5_K_M Q6_K.
TINYLLAMA_CHAT = Alias(
    name="tinyllama-1.1b-chat",
    repo="TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
    file_pattern="tinyllama-1.1b-chat-v1.0.{quant}.gguf",
    quants=("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_K_S", "Q5_K_M",
            "Q6_K", "Q8_0"),
    default_quant="Q4_K_M",
    revision="52e7645ba7c309695bec7ac98f4f005b139cf465",
    pinned={
        "Q2_K": ("030a469a63576d59f601ef5608846b7718eaa884dd820e9aa7493efec1788afa", 483_116_416),
        "Q3_K_M": ("ec461c4d2b60896152bca3978aa49cd70edad7298715e4222e12af1eefea2125", 550_819_200),
        "Q4_0": ("da3087fb14aede55fde6eb81a0e55e886810e43509ec82ecdc7aa5d62a03b556", 637_699_456),
        "Q4_K_M": ("9fecc3b3cd76bba89d504f29b616eedf7da85b96540e490ca5824d3f7d2776a0", 668_788_096),
        "Q8_0": ("a4c9bb1dbaa372f6381a035fa5c02ef087aaa1ff1f843a56a22328114f03fc59", 1_170_781_568),
    },
    description="TinyLlama-1.1B-Chat-v1.0, the reference model (TheBloke's GGUF conversions)",
)

#: Known aliases by family name.
ALIASES: dict[str, Alias] = {a.name: a for a in (TINYLLAMA_CHAT,)}


@dataclass(frozen=True)
class AliasRef:
    """A resolved alias reference: which file on the Hub, and what it must hash to (if pinned)."""

    alias: Alias
    quant: str

    @property
    def name(self) -> str:
        """Canonical name, e.g. ``tinyllama-1.1b-chat:Q4_K_M``."""
        return f"{self.alias.name}:{self.quant}"

    @property
    def filename(self) -> str:
        return self.alias.filename(self.quant)

    @property
    def sha256(self) -> str | None:
        pin = self.alias.pinned.get(self.quant)
        return pin[0] if pin else None

    @property
    def size_bytes(self) -> int | None:
        pin = self.alias.pinned.get(self.quant)
        return pin[1] if pin else None

    @property
    def hf_ref(self) -> str:
        rev = f"@{self.alias.revision}" if self.alias.revision else ""
        return f"hf:{self.alias.repo}/{self.filename}{rev}"


def pinned_sha256(repo: str, filename: str, revision: str | None) -> str | None:
    """The published sha256 of ``repo/filename`` at an alias's pinned revision, if we have one."""
    for alias in ALIASES.values():
        if alias.repo != repo or revision != alias.revision:
            continue
        for quant in alias.quants:
            if alias.filename(quant) == filename and quant in alias.pinned:
                return alias.pinned[quant][0]
    return None


def known_aliases_text() -> str:
    """'tinyllama-1.1b-chat:{Q2_K,...}' for error messages and help."""
    return "; ".join(f"{a.name}:{{{','.join(a.quants)}}}" for a in ALIASES.values())


def is_alias_like(ref: str) -> bool:
    """True for ``family`` or ``family:QUANT`` where family is a known alias."""
    return ref.split(":", 1)[0] in ALIASES


def parse_alias(ref: str) -> AliasRef:
    """``tinyllama-1.1b-chat:Q4_K_M`` (or just ``tinyllama-1.1b-chat``: default quant) → AliasRef.

    Quant names are matched case-insensitively. Unknown family or quant → :class:`ModelError`
    listing what is known.
    """
    family, _, quant = ref.partition(":")
    alias = ALIASES.get(family)
    if alias is None:
        raise ModelError(f"unknown model alias {ref!r}; known aliases: {known_aliases_text()}")
    if not quant:
        quant = alias.default_quant
    match = [q for q in alias.quants if q.lower() == quant.lower()]
    if not match:
        raise ModelError(f"alias {alias.name!r} has no quant {quant!r}; known quants: {', '.join(alias.quants)}")
    return AliasRef(alias=alias, quant=match[0])
