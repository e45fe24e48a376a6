"""One model reference syntax for every command: resolve a reference to a GGUF file on disk.

A reference is one of::

    ./path/to/model.gguf                 a local GGUF file (validated, sha256 computed, not copied)
    NAME                                 a model already in the cache manifest (``fetch --list``)
    tinyllama-1.1b-chat[:Q4_K_M]         an alias of a real model on Hugging Face
    hf:OWNER/REPO/FILE.gguf[@REVISION]   a file on the Hugging Face Hub
    https://host/path/model.gguf         a plain download (resumable)
    synthetic:SHAPE[:QUANT][@SEED]       a shape twin (default quant Q4_K_M, seed 0)

Remote and synthetic models are fetched/synthesized on first use (when ``allow_fetch``) and cached
under :func:`energybench.paths.models_dir`; later calls are manifest hits that only check the file
size (the sha256 of a multi-GB file is not recomputed each time).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from energybench.errors import ChecksumError, ModelError
from energybench.models.aliases import AliasRef, is_alias_like, known_aliases_text, parse_alias, pinned_sha256
from energybench.models.download import (
    ProgressFn,
    check_relative_name,
    hf_download,
    http_download,
    lock_path_for,
    normalize_sha256,
    sha256_file,
    url_cache_path,
    url_filename,
)
from energybench.models.gguf_check import GGUFInfo, file_identity, read_gguf_info
from energybench.models.manifest import Manifest, ModelEntry, file_lock, now_iso
from energybench.models.shapes import SHAPES, get_shape
from energybench.models.synth import DEFAULT_QUANT, normalize_quant, synthesize_file, twin_filename

RefKind = Literal["synthetic", "hf", "url", "alias", "name", "path"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: where its GGUF file is and what it is."""

    ref: str  # the reference as given
    name: str  # its name in the manifest
    path: Path
    sha256: str
    size_bytes: int
    synthetic: bool
    quant: str | None  # Q4_K_M, F16 ... (from the file's general.file_type or the alias)
    shape: str | None  # the shape a twin copies; None for real models
    source: str  # hf:REPO/FILE@REV, https://..., local, synthetic:SHAPE:QUANT@SEED
    seed: int | None = None
    arch: str | None = None
    added_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "name": self.name, "path": str(self.path), "sha256": self.sha256,
                "size_bytes": self.size_bytes, "synthetic": self.synthetic, "quant": self.quant, "shape": self.shape,
                "source": self.source, "seed": self.seed, "arch": self.arch, "added_at": self.added_at}


@dataclass(frozen=True)
class ParsedRef:
    """A reference split into its parts (no I/O done)."""

    kind: RefKind
    ref: str
    repo: str | None = None  # hf
    filename: str | None = None  # hf
    revision: str | None = None  # hf
    url: str | None = None
    alias: AliasRef | None = None
    shape: str | None = None  # synthetic
    quant: str | None = None  # synthetic
    seed: int | None = None  # synthetic
    path: Path | None = None

    @property
    def source(self) -> str | None:
        """The canonical source string stored in the manifest."""
        if self.kind == "hf":
            return f"hf:{self.repo}/{self.filename}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "url":
            return self.url
        if self.kind == "alias":
            assert self.alias is not None
            return self.alias.hf_ref
        if self.kind == "synthetic":
            return synthetic_source(self.shape or "", self.quant or DEFAULT_QUANT, self.seed or 0)
        return None

    @property
    def default_name(self) -> str:
        if self.kind == "alias":
            assert self.alias is not None
            return self.alias.name
        if self.kind == "synthetic":
            return synthetic_name(self.shape or "", self.quant or DEFAULT_QUANT, self.seed or 0)
        if self.kind == "hf":
            return _stem(self.filename or "model")
        if self.kind == "url":
            return _stem(url_filename(self.url or ""))
        if self.kind == "path":
            return _stem((self.path or Path("model")).name)
        return self.ref


def _stem(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    return name[:-5] if name.lower().endswith(".gguf") else name


def synthetic_source(shape: str, quant: str, seed: int) -> str:
    return f"synthetic:{shape}:{quant}@{seed}"


def synthetic_name(shape: str, quant: str, seed: int) -> str:
    return f"synthetic:{shape}:{quant}" + (f"@{seed}" if seed else "")


def parse_ref(ref: str) -> ParsedRef:
    """Classify a model reference. Raises :class:`ModelError` for malformed ones (``..`` segments,
    unknown shape/quant/alias quant) before anything touches the network or the disk."""
    ref = ref.strip()
    if not ref:
        raise ModelError("empty model reference", hint=_REF_HELP)
    if ref.startswith("synthetic:"):
        body = ref[len("synthetic:"):]
        seed = 0
        if "@" in body:
            body, _, seed_text = body.rpartition("@")
            try:
                seed = int(seed_text)
            except ValueError:
                raise ModelError(f"seed {seed_text!r} in {ref!r} is not an integer") from None
            if seed < 0 or seed >= 2**63:
                raise ModelError(f"seed {seed} in {ref!r} out of range (0 .. 2**63-1)")
        shape_name, _, quant = body.partition(":")
        shape = get_shape(shape_name)
        return ParsedRef(kind="synthetic", ref=ref, shape=shape.name,
                         quant=normalize_quant(quant) if quant else DEFAULT_QUANT, seed=seed)
    if ref.startswith("hf:"):
        body = ref[3:]
        revision = None
        if "@" in body:
            body, _, revision = body.rpartition("@")
            if not revision:
                raise ModelError(f"empty revision after '@' in {ref!r}")
            check_relative_name(revision, what="revision")
        parts = body.split("/")
        if len(parts) < 3:
            raise ModelError(f"{ref!r} must be hf:OWNER/REPO/FILE.gguf[@REVISION]")
        check_relative_name(body, what="Hugging Face path")
        return ParsedRef(kind="hf", ref=ref, repo="/".join(parts[:2]), filename="/".join(parts[2:]), revision=revision)
    lowered = ref.lower()
    if lowered.startswith(("http://", "https://")):
        url_filename(ref)  # rejects '..' segments and names without a file
        return ParsedRef(kind="url", ref=ref, url=ref)
    if lowered.startswith(("ftp://", "file://", "s3://")):
        raise ModelError(f"unsupported URL scheme in {ref!r}; use https://, hf:, a path or a name", hint=_REF_HELP)
    if is_alias_like(ref):
        return ParsedRef(kind="alias", ref=ref, alias=parse_alias(ref))
    return ParsedRef(kind="name", ref=ref, path=Path(ref).expanduser())


_REF_HELP = ("a model is a GGUF path, a cached name (energybench fetch --list), an alias such as "
             "tinyllama-1.1b-chat:Q4_K_M, hf:OWNER/REPO/FILE.gguf[@REV], an https:// URL, or synthetic:SHAPE[:QUANT]")


# ----------------------------------------------------------------------------- resolution


def _to_resolved(entry: ModelEntry, ref: str) -> ResolvedModel:
    return ResolvedModel(ref=ref, name=entry.name, path=Path(entry.path), sha256=entry.sha256,
                         size_bytes=entry.size_bytes, synthetic=entry.synthetic, quant=entry.quant, shape=entry.shape,
                         source=entry.source, seed=entry.seed, arch=entry.arch, added_at=entry.added_at)


def _entry_usable(entry: ModelEntry) -> bool:
    """The entry's file is there with the recorded size (and, for local files, the recorded mtime)."""
    try:
        size, mtime_ns = file_identity(entry.path)
    except OSError:
        return False
    if size != entry.size_bytes:
        return False
    return not (entry.source == "local" and entry.mtime_ns is not None and mtime_ns != entry.mtime_ns)


def _lookup(manifest: Manifest, parsed: ParsedRef) -> ModelEntry | None:
    entries = manifest.entries()
    src = parsed.source
    if src is not None:
        for e in entries.values():
            if e.source == src:
                return e
    return entries.get(parsed.default_name) if parsed.kind in ("alias", "synthetic") else None


def _register(manifest: Manifest, entry: ModelEntry, *, explicit_name: bool, force: bool) -> ModelEntry:
    """Add ``entry`` to the manifest. A name taken by a different file is an error with an explicit
    ``--name`` (unless ``force``), and is made unique (``NAME-<sha8>``) otherwise."""
    with manifest.editing() as entries:
        for name, other in list(entries.items()):  # one entry per source/path: replace the stale one
            if name != entry.name and ((entry.source != "local" and other.source == entry.source)
                                       or (entry.source == "local" and other.source == "local"
                                           and other.path == entry.path)):
                del entries[name]
        taken = entries.get(entry.name)
        if taken is not None and taken.path != entry.path and not force:
            if explicit_name:
                raise ModelError(f"the name {entry.name!r} is already used by {taken.path}",
                                 hint="choose another --name, or pass --force to replace it")
            entry = replace(entry, name=f"{entry.name}-{entry.sha256[:8]}")
        entries[entry.name] = entry
    return entry


def _check_name(name: str) -> str:
    if not name or name != name.strip() or any(c.isspace() or ord(c) < 32 for c in name) or name.startswith("-"):
        raise ModelError(f"--name {name!r} must be non-empty, without spaces or control characters, "
                         "and not start with '-'")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ModelError(f"--name {name!r} must not contain path separators")
    return name


def _info_fields(info: GGUFInfo) -> dict[str, Any]:
    return {"quant": info.quant, "arch": info.architecture}


def register_local(path: Path | str, *, ref: str | None = None, sha256: str | None = None, name: str | None = None,
                   force: bool = False, progress: ProgressFn | None = None,
                   manifest: Manifest | None = None) -> ResolvedModel:
    """Register an existing GGUF file (validated; sha256 computed unless unchanged since last time)."""
    manifest = manifest or Manifest()
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"model file not found: {p}", hint=_REF_HELP)
    p = p.resolve()
    info = read_gguf_info(p)
    size, mtime_ns = file_identity(p)
    expected = normalize_sha256(sha256)
    prior = manifest.find(path=p)
    if prior is not None and prior.source == "local" and prior.size_bytes == size and prior.mtime_ns == mtime_ns \
            and not force:
        digest = prior.sha256
    else:
        digest = sha256_file(p, progress=progress)
    if expected is not None and digest != expected:
        raise ChecksumError(f"sha256 mismatch for {p}: expected {expected}, got {digest} (the file was left "
                            "untouched and not registered)", hint="check --sha256")
    parsed = ParsedRef(kind="path", ref=str(p), path=p)
    entry = ModelEntry(name=_check_name(name) if name else parsed.default_name, path=str(p), sha256=digest,
                       size_bytes=size, source="local", synthetic=info.synthetic,
                       shape=_str_or_none(info.metadata.get("energybench.shape")),
                       seed=_int_or_none(info.metadata.get("energybench.seed")), mtime_ns=mtime_ns,
                       added_at=prior.added_at if prior else now_iso(), **_info_fields(info))
    if prior is not None and prior.name != entry.name and name is None:
        entry = replace(entry, name=prior.name)
    entry = _register(manifest, entry, explicit_name=name is not None, force=force)
    return _to_resolved(entry, ref or str(path))


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def synthesize_model(shape: str, *, quant: str = DEFAULT_QUANT, seed: int = 0, force: bool = False,
                     name: str | None = None, ref: str | None = None, progress: ProgressFn | None = None,
                     manifest: Manifest | None = None) -> ResolvedModel:
    """Make (or find cached) the shape twin ``shape`` at ``quant`` with ``seed``; register it."""
    manifest = manifest or Manifest()
    s = get_shape(shape)
    quant = normalize_quant(quant)
    parsed = ParsedRef(kind="synthetic", ref=ref or synthetic_name(s.name, quant, seed), shape=s.name, quant=quant,
                       seed=seed)
    dest = manifest.root / "synthetic" / twin_filename(s, quant, seed)
    with file_lock(lock_path_for(dest)):
        entry = _lookup(manifest, parsed)
        if entry is not None and not force and _entry_usable(entry):
            if name and entry.name != name:
                entry = _register(manifest, replace(entry, name=_check_name(name)), explicit_name=True, force=force)
            return _to_resolved(entry, parsed.ref)
        orphan = None if force else _orphan_twin(dest, s.name, quant, seed)
        if orphan is not None:  # the file is there but the manifest lost it: register, don't remake
            sha, size = orphan
        else:
            result = synthesize_file(s, dest, quant=quant, seed=seed, progress=progress)
            sha, size = result.sha256, result.size_bytes
        entry = ModelEntry(name=_check_name(name) if name else parsed.default_name, path=str(dest.resolve()),
                           sha256=sha, size_bytes=size, source=parsed.source or "",
                           synthetic=True, shape=s.name, quant=quant, seed=seed, arch=s.arch)
        entry = _register(manifest, entry, explicit_name=name is not None, force=force)
    return _to_resolved(entry, parsed.ref)


def _orphan_twin(dest: Path, shape: str, quant: str, seed: int) -> tuple[str, int] | None:
    """(sha256, size) of an existing, complete twin file at ``dest`` that matches; None otherwise."""
    if not dest.exists():
        return None
    try:
        info = read_gguf_info(dest)
    except ModelError:
        return None
    md = info.metadata
    if md.get("energybench.shape") != shape or md.get("energybench.seed") != seed or info.quant != quant:
        return None
    return sha256_file(dest), dest.stat().st_size


def _fetch_remote(parsed: ParsedRef, *, sha256: str | None, name: str | None, force: bool,
                  progress: ProgressFn | None, manifest: Manifest) -> ResolvedModel:
    expected = normalize_sha256(sha256)
    if parsed.kind == "hf" and expected is None:  # e.g. an alias's file named by its hf: source
        expected = pinned_sha256(parsed.repo or "", parsed.filename or "", parsed.revision)
    if parsed.kind == "alias":
        assert parsed.alias is not None
        pinned = parsed.alias.sha256
        if expected is None:
            expected = pinned
        elif pinned is not None and expected != pinned:
            raise ModelError(f"--sha256 {expected} differs from the published sha256 {pinned} of {parsed.alias.name}")
    entry = _lookup(manifest, parsed)
    if entry is not None and not force and _entry_usable(entry):
        if expected is not None and entry.sha256 != expected:
            raise ChecksumError(f"the cached {entry.name} has sha256 {entry.sha256}, not {expected}",
                                hint="pass --force to download it again")
        if name and entry.name != name:
            entry = _register(manifest, replace(entry, name=_check_name(name)), explicit_name=True, force=force)
        return _to_resolved(entry, parsed.ref)

    if parsed.kind == "url":
        assert parsed.url is not None
        dest = url_cache_path(manifest.root, parsed.url)
        with file_lock(lock_path_for(dest)):
            entry = _lookup(manifest, parsed)  # another process may have finished it meanwhile
            if entry is not None and not force and _entry_usable(entry) and expected in (None, entry.sha256):
                return _to_resolved(entry, parsed.ref)
            reuse = None if force or not dest.exists() else _valid_or_none(dest)
            digest = sha256_file(dest) if reuse is not None else ""
            if reuse is not None and expected in (None, digest):
                info = reuse  # downloaded before, but the manifest lost it: register it again
            else:
                digest, info = http_download(parsed.url, dest, expected_sha256=expected, progress=progress,
                                             lock=False)
            path = dest
    else:
        if parsed.kind == "alias":
            assert parsed.alias is not None
            repo, filename, revision = parsed.alias.alias.repo, parsed.alias.filename, parsed.alias.alias.revision
        else:
            repo, filename, revision = parsed.repo or "", parsed.filename or "", parsed.revision
        path = hf_download(repo, filename, revision=revision, cache_dir=manifest.root / "hf", progress=progress,
                           force=force)
        try:
            info = read_gguf_info(path)
        except ModelError:
            _delete_hf_file(path)
            raise
        digest = sha256_file(path)
        if expected is not None and digest != expected:
            _delete_hf_file(path)
            raise ChecksumError(f"sha256 mismatch for {filename}: expected {expected}, got {digest}; "
                                "the bad download was deleted", hint="check --sha256, or the file changed upstream")
    quant = parsed.alias.quant if parsed.kind == "alias" and parsed.alias else info.quant
    entry = ModelEntry(name=_check_name(name) if name else parsed.default_name, path=str(Path(path).absolute()),
                       sha256=digest, size_bytes=Path(path).stat().st_size, source=parsed.source or parsed.ref,
                       synthetic=info.synthetic, shape=_str_or_none(info.metadata.get("energybench.shape")),
                       quant=quant, seed=_int_or_none(info.metadata.get("energybench.seed")), arch=info.architecture)
    entry = _register(manifest, entry, explicit_name=name is not None, force=force)
    return _to_resolved(entry, parsed.ref)


def _valid_or_none(path: Path) -> GGUFInfo | None:
    try:
        return read_gguf_info(path)
    except ModelError:
        return None


def _delete_hf_file(path: Path) -> None:
    """Remove a bad file from the HF cache: the snapshot link and the blob it points to."""
    with contextlib.suppress(OSError):
        target = Path(os.path.realpath(path))
        path.unlink()
        if target != path:
            target.unlink()


def fetch_model(ref: str, *, sha256: str | None = None, name: str | None = None, force: bool = False,
                progress: ProgressFn | None = None) -> ResolvedModel:
    """``energybench fetch REF``: download / register / synthesize ``ref`` and record it in the manifest.

    Returns the cached model when it is already there (unless ``force``). ``sha256`` is checked
    against the file (for aliases it defaults to the published checksum, where one is pinned).
    """
    manifest = Manifest()
    parsed = parse_ref(ref)
    if parsed.kind == "synthetic":
        if sha256 is not None:
            raise ModelError("--sha256 does not apply to synthetic models (their sha256 is computed)")
        return synthesize_model(parsed.shape or "", quant=parsed.quant or DEFAULT_QUANT, seed=parsed.seed or 0,
                                force=force, name=name, ref=ref, progress=progress, manifest=manifest)
    if parsed.kind in ("hf", "url", "alias"):
        return _fetch_remote(parsed, sha256=sha256, name=name, force=force, progress=progress, manifest=manifest)
    # a cached name or a local path
    entry = manifest.entries().get(ref)
    if entry is not None:
        if entry.source == "local":
            return register_local(entry.path, ref=ref, sha256=sha256, name=name or entry.name, force=force,
                                  progress=progress, manifest=manifest)
        if force or not _entry_usable(entry):
            return fetch_model(entry.source, sha256=sha256, name=name or entry.name, force=True, progress=progress)
        return _checked_cached(entry, ref, sha256)
    return register_local(_path_or_error(parsed), ref=ref, sha256=sha256, name=name, force=force, progress=progress,
                          manifest=manifest)


def _checked_cached(entry: ModelEntry, ref: str, sha256: str | None) -> ResolvedModel:
    expected = normalize_sha256(sha256)
    if expected is not None and entry.sha256 != expected:
        raise ChecksumError(f"the cached {entry.name} has sha256 {entry.sha256}, not {expected}",
                            hint="pass --force to download it again")
    return _to_resolved(entry, ref)


def _path_or_error(parsed: ParsedRef) -> Path:
    p = parsed.path
    if p is not None and p.exists():
        return p
    looks_like_path = p is not None and (os.sep in parsed.ref or "/" in parsed.ref or parsed.ref.lower().endswith(".gguf"))
    if looks_like_path:
        raise ModelError(f"model file not found: {parsed.ref}", hint=_REF_HELP)
    if ":" in parsed.ref:
        raise ModelError(f"unknown model alias {parsed.ref!r}; known aliases: {known_aliases_text()}; "
                         f"known shapes for synthetic:SHAPE: {', '.join(SHAPES)}")
    raise ModelError(f"unknown model {parsed.ref!r}: not a file, not a cached model, not an alias "
                     f"(known aliases: {known_aliases_text()})", hint=_REF_HELP)


def resolve_model(ref: str, *, allow_fetch: bool = True, progress: ProgressFn | None = None) -> ResolvedModel:
    """Resolve any model reference to a GGUF file on disk (fetching/synthesizing on first use).

    With ``allow_fetch=False`` nothing is downloaded or synthesized: a reference that is not cached
    raises :class:`ModelError` saying which ``energybench fetch`` command would get it.
    """
    manifest = Manifest()
    parsed = parse_ref(ref)
    if parsed.kind in ("synthetic", "hf", "url", "alias"):
        entry = _lookup(manifest, parsed)
        if entry is not None and _entry_usable(entry):
            return _to_resolved(entry, ref)
        if not allow_fetch:
            cmd = (f"energybench fetch --synthetic {parsed.shape} --quant {parsed.quant} --seed {parsed.seed}"
                   if parsed.kind == "synthetic" else f"energybench fetch {ref}")
            raise ModelError(f"model {ref!r} is not in the cache", hint=f"run: {cmd}")
        if parsed.kind == "synthetic":
            return synthesize_model(parsed.shape or "", quant=parsed.quant or DEFAULT_QUANT, seed=parsed.seed or 0,
                                    ref=ref, progress=progress, manifest=manifest)
        return _fetch_remote(parsed, sha256=None, name=None, force=False, progress=progress, manifest=manifest)
    entry = manifest.entries().get(ref)
    if entry is not None:
        if _entry_usable(entry):
            return _to_resolved(entry, ref)
        if entry.source == "local":
            if Path(entry.path).exists():  # changed on disk: validate and hash again
                return register_local(entry.path, ref=ref, name=entry.name, force=True, progress=progress,
                                      manifest=manifest)
            raise ModelError(f"cached model {ref!r}: its file {entry.path} is gone",
                             hint=f"register it again with energybench fetch PATH --name {ref}")
        if not allow_fetch:
            raise ModelError(f"cached model {ref!r}: its file {entry.path} is missing or changed",
                             hint=f"run: energybench fetch {entry.source} --force")
        return fetch_model(entry.source, name=entry.name, force=True, progress=progress)
    return register_local(_path_or_error(parsed), ref=ref, progress=progress, manifest=manifest)


def list_models() -> list[ResolvedModel]:
    """Every model in the cache manifest, by name."""
    entries = Manifest().entries()
    return [_to_resolved(entries[name], name) for name in sorted(entries)]
