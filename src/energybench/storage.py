"""Where result sets live: local directories, or object-storage URLs (``s3://bucket/prefix``).

Objects are read, listed and written through polars' native cloud support (the Rust
``object_store`` crate inside polars): ``scan_parquet`` and ``read_lines`` read, their globs list,
``write_parquet`` and ``sink_csv`` write. energybench has no S3 client of its own and passes no
credentials: polars reads them, the region and an endpoint (``AWS_ENDPOINT_URL``, for MinIO, Ceph
or a server on 127.0.0.1; ``AWS_ALLOW_HTTP=true`` for plain HTTP) from the standard ``AWS_*``
environment variables (polars' ``storage_options`` documentation; object_store's
``AmazonS3Builder::from_env`` and ``AmazonS3ConfigKey``). Nothing here writes them anywhere.

An object under its final name is never torn: "updates to a single key are atomic ... you will
get either the old data or the new data, but never partial or corrupt data" (Amazon S3 User
Guide, "Amazon S3 data consistency model"). Writers therefore put each file straight under its
final key, where a local directory needs a temporary name and a rename.

Local globs are expanded here too (``report 'results/study/*'`` works where no shell expands it,
as in a CI step's quoted argument); a URL glob lists the result sets whose ``metadata.json`` match.
"""

from __future__ import annotations

import glob as globlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import ResultsError, UsageError

#: The URL schemes read and written through polars (tested against an S3 API).
SCHEMES = ("s3://",)
GLOB_CHARS = "*?["

Location = Path | str


def is_url(loc: Any) -> bool:
    """Whether ``loc`` names an object-storage location (``s3://bucket/prefix``)."""
    return isinstance(loc, str) and loc.startswith(SCHEMES)


def location(text: str | Path) -> Location:
    """A command-line argument as a location: the URL as it is, else a local path."""
    return text if is_url(text) else Path(text)


def join(base: Location, *names: str) -> Location:
    """``base/name/...`` for a URL or a path."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *names])
    return Path(base).joinpath(*names)


def name_of(loc: Location) -> str:
    """The last component of a location (``s3://b/study/shard-1`` -> ``shard-1``)."""
    if is_url(loc):
        return str(loc).rstrip("/").rsplit("/", 1)[-1]
    return Path(loc).resolve().name or str(loc)


def parent_of(loc: Location) -> Location:
    """The location that holds ``loc``."""
    if is_url(loc):
        return str(loc).rstrip("/").rsplit("/", 1)[0]
    return Path(loc).resolve().parent


def _has_glob(text: str) -> bool:
    return any(c in text for c in GLOB_CHARS)


def expand(args: Sequence[str | Path]) -> list[Location]:
    """Every result set the arguments name: directories and URLs as given, globs expanded (sorted).
    A glob that matches no result set is an error (a typo must not report nothing)."""
    out: list[Location] = []
    for arg in args:
        text = str(arg)
        if not _has_glob(text):
            out.append(location(arg))
            continue
        found = list_url_sets(text) if is_url(text) else _local_sets(text)
        if not found:
            raise UsageError(f"{text!r} matches no results directory",
                             hint="a results directory holds metadata.json, runs.parquet or parts/")
        out.extend(found)
    return list(dict.fromkeys(out))


def glob_base(arg: str | Path) -> Location:
    """The location above the first glob character of ``arg`` (``study/*`` -> ``study``); ``arg``
    itself when it has none."""
    text = str(arg)
    if not _has_glob(text):
        return location(arg)
    head = text[: min(text.index(c) for c in GLOB_CHARS if c in text)]
    return location(head.rsplit("/", 1)[0] if "/" in head else ".")


def _local_sets(pattern: str) -> list[Location]:
    hits = sorted(globlib.glob(str(Path(pattern).expanduser())))
    return [Path(h) for h in hits if Path(h).is_dir() and any(
        (Path(h) / n).exists() for n in ("metadata.json", "runs.parquet", "parts"))]


# ----------------------------------------------------------------------------- reading objects


def _missing(exc: BaseException) -> bool:
    """Whether a polars error says the object (or every object of a glob) does not exist."""
    text = str(exc).lower()
    if "nosuchbucket" in text:  # a bucket that does not exist is an error, not an empty result set
        return False
    if isinstance(exc, FileNotFoundError):
        return True
    return any(s in text for s in ("not found", "no such file", "expanded paths were empty", "nosuchkey",
                                   "does not exist", "404"))


def _error(url: str, exc: BaseException, verb: str = "read") -> ResultsError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ResultsError(f"cannot {verb} {url}: {first}",
                        hint="credentials, region and endpoint come from the AWS_* environment variables")


def read_text(url: str) -> str | None:
    """The text of one object, None when it does not exist."""
    try:
        lines = pl.read_lines(url, glob=False)
    except Exception as exc:  # noqa: BLE001 - polars raises several types; a missing object is not an error
        if _missing(exc):
            return None
        raise _error(url, exc) from exc
    return "\n".join(lines.get_column(lines.columns[0]).to_list())


def read_json(url: str) -> dict[str, Any]:
    """A JSON object stored at ``url`` ({} when it does not exist)."""
    text = read_text(url)
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"cannot read {url}: {exc}") from exc


def scan(pattern: str, schema: dict[str, pl.DataType], run_ids: Iterable[str] | None = None) -> pl.DataFrame | None:
    """The rows of the parquet objects matching ``pattern`` (optionally only some runs), cast to
    ``schema``; None when no object matches."""
    from energybench.results import conform

    try:
        lf = pl.scan_parquet(pattern, missing_columns="insert", extra_columns="ignore")
        if run_ids is not None:
            lf = lf.filter(pl.col("run_id").is_in(list(run_ids)))
        return conform(lf.collect(), schema)
    except Exception as exc:  # noqa: BLE001
        if _missing(exc):
            return None
        raise _error(pattern, exc) from exc


def _paths(pattern: str, scan_fn: Callable[[], pl.LazyFrame]) -> list[str]:
    """The distinct ``_path`` values of ``scan_fn()`` (a scan with ``include_file_paths="_path"``),
    sorted; [] when nothing matches ``pattern``."""
    try:
        df = scan_fn().select("_path").unique().collect()
    except Exception as exc:  # noqa: BLE001
        if _missing(exc):
            return []
        raise _error(pattern, exc) from exc
    return sorted(df["_path"].to_list())


def list_objects(pattern: str) -> list[str]:
    """The parquet objects matching ``pattern`` (their footers are read, not their rows)."""
    return _paths(pattern, lambda: pl.scan_parquet(pattern, include_file_paths="_path"))


def list_url_sets(pattern: str) -> list[Location]:
    """Result sets under a URL glob (``s3://bucket/study/*``): those whose metadata.json matches."""
    meta = str(join(pattern, "metadata.json"))
    found = _paths(pattern, lambda: pl.scan_lines(meta, include_file_paths="_path"))
    return [p.removesuffix("/metadata.json") for p in found]


# ----------------------------------------------------------------------------- result sets at a URL


def read_runs(url: str) -> pl.DataFrame:
    """The runs of a result set at ``url``: consolidated and parts, one row per run_id."""
    from energybench.results import RUNS_SCHEMA

    frames = [f for f in (scan(str(join(url, "runs.parquet")), RUNS_SCHEMA),
                          scan(str(join(url, "parts", "runs-*.parquet")), RUNS_SCHEMA)) if f is not None]
    if not frames:
        return pl.DataFrame(schema=RUNS_SCHEMA)
    return pl.concat(frames).unique(subset=["run_id"], keep="last", maintain_order=True)


def read_samples(url: str, run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """Meter samples of a result set at ``url`` (optionally only some runs)."""
    from energybench.results import SAMPLES_SCHEMA, empty_samples

    ids = None if run_ids is None else list(run_ids)
    frames = [f for f in (scan(str(join(url, "samples.parquet")), SAMPLES_SCHEMA, ids),
                          scan(str(join(url, "parts", "samples-*.parquet")), SAMPLES_SCHEMA, ids)) if f is not None]
    if not frames:
        return empty_samples()
    df = pl.concat(frames)
    return df.unique(subset=["run_id", "meter", "domain", "t_ns"], keep="last", maintain_order=True)


def sample_objects(url: str) -> list[str]:
    """Every parquet object holding samples of the set at ``url`` (consolidated first, then parts)."""
    return list_objects(str(join(url, "samples.parquet"))) + list_objects(str(join(url, "parts", "samples-*.parquet")))


# ----------------------------------------------------------------------------- writing objects


def write_parquet(df: pl.DataFrame, url: str) -> None:
    """Put ``df`` at ``url`` as one parquet object (visible whole or not at all)."""
    try:
        df.write_parquet(url, compression="zstd", statistics=True)
    except Exception as exc:  # noqa: BLE001
        raise _error(url, exc, "write") from exc


def write_text(text: str, url: str) -> None:
    """Put a text file (``metadata.json``, ``journal.jsonl``) at ``url``, byte for byte.

    polars writes no raw bytes to object storage; a one-column CSV without header or quoting
    (``quote_style="never"``) is the text verbatim, one row per line, each ended by ``\\n``. A text
    is stored with exactly one final newline and no ``\\r``; JSON written by energybench holds
    neither inside a line (json.dumps escapes control characters).
    """
    lines = text.rstrip("\n").split("\n")
    if any("\r" in line for line in lines):
        raise ValueError("write_text stores \\n-separated text only")
    try:
        pl.LazyFrame({"line": lines}, schema={"line": pl.String}).sink_csv(
            url, include_header=False, quote_style="never")
    except Exception as exc:  # noqa: BLE001
        raise _error(url, exc, "write") from exc


def upload_file(local: Path, url: str) -> None:
    """Put a local results file at ``url``: parquet re-written by polars, text as it is."""
    if local.suffix == ".parquet":
        write_parquet(pl.read_parquet(local), url)
    else:
        write_text(local.read_text(encoding="utf-8"), url)
