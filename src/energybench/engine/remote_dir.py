"""Results written to object storage (``sweep --out s3://bucket/prefix``): a local staging
directory that the engine writes as it writes any results directory, and an upload of each file
once it is durable there, so a fleet of machines writes into one bucket.

- The staging directory is ``$ENERGYBENCH_HOME/staging/<hash of the URL>``; every write lands
  there first, crash-safe as in :class:`energybench.results.ResultsStore`.
- After each run: its samples part, then its runs part, go up (a run is in the bucket when its
  runs part is, and its samples are there by then). ``metadata.json`` goes up whenever it
  changes; at the end the consolidated ``runs.parquet`` and ``samples.parquet`` and
  ``journal.jsonl``, then the staging directory is removed. The parts stay in the bucket (polars
  deletes no object; readers drop duplicate run ids, as for a local directory).
- Every object is put under its final key: a kill at any moment leaves whole objects only
  (:mod:`energybench.storage`). A run that was durable locally but not yet uploaded is sent by the
  next resume on that machine, when the bucket lacks it; resumed elsewhere, it is run again.
- ``--resume s3://...`` copies the bucket's runs, samples, metadata and journal into a fresh
  staging directory and continues like a local resume; re-uploading is idempotent (a run's
  objects have the same key and content).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import ResultsError, UsageError
from energybench.paths import home
from energybench.plan import Plan
from energybench.results import ResultsStore, atomic_write_bytes, atomic_write_parquet, read_runs, read_samples, \
    safe_run_id
from energybench import storage


def staging_dir(url: str) -> Path:
    """The local staging directory of the results at ``url``."""
    return home() / "staging" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


class UploadingStore(ResultsStore):
    """A :class:`ResultsStore` in a staging directory that uploads each file once it is durable."""

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        self.url = url.rstrip("/")

    @property
    def location(self) -> str:
        return self.url

    def _put(self, path: Path) -> None:
        storage.upload_file(path, str(storage.join(self.url, *path.relative_to(self.root).parts)))

    def create(self, metadata: Any) -> None:
        super().create(metadata)
        self._put(self.metadata_path)

    def update_metadata(self, **changes: Any) -> dict[str, Any]:
        meta = super().update_metadata(**changes)
        self._put(self.metadata_path)
        return meta

    def add_run(self, row: Any, samples: pl.DataFrame | None = None) -> None:
        super().add_run(row, samples)
        self.upload_run(str(row["run_id"]))

    def upload_run(self, run_id: str) -> None:
        """Put a staged run's samples part, then its runs part."""
        stem = safe_run_id(run_id)
        for name in (f"samples-{stem}.parquet", f"runs-{stem}.parquet"):
            if (self.parts / name).exists():
                self._put(self.parts / name)

    def add_samples(self, name: str, samples: pl.DataFrame) -> None:
        super().add_samples(name, samples)
        self._put(self.parts / f"samples-{safe_run_id(name)}.parquet")

    def consolidate(self) -> tuple[Path, Path]:
        """Consolidate, upload the whole files, then remove the staging directory."""
        runs, samples = super().consolidate()
        for path in (samples, runs, self.journal_path, self.metadata_path):
            if path.exists():
                self._put(path)
        shutil.rmtree(self.root, ignore_errors=True)
        return runs, samples


def open_new(url: str) -> UploadingStore:
    """A store for a new sweep at ``url``; refuses a URL that already holds results."""
    if storage.read_text(str(storage.join(url, "metadata.json"))) is not None:
        raise UsageError(f"{url} already holds results",
                         hint=f"resume it with `energybench sweep --resume {url}` or choose another --out")
    root = staging_dir(url)
    shutil.rmtree(root, ignore_errors=True)  # nothing of it reached the bucket: start afresh
    return UploadingStore(root, url)


def _send_leftovers(root: Path, url: str, remote: pl.DataFrame) -> None:
    """Upload the runs a killed session staged but never sent, where the bucket lacks them (or
    holds them failed while the staged one is ok)."""
    if not (root / "parts").is_dir():
        return
    ok = set(remote.filter(pl.col("status") == "ok")["run_id"].to_list())
    have = set(remote["run_id"].to_list())
    store = UploadingStore(root, url)
    for row in read_runs(root).iter_rows(named=True):
        rid = row["run_id"]
        if rid not in have or (rid not in ok and row["status"] == "ok"):
            store.upload_run(rid)


def _stage(root: Path, url: str, meta: dict[str, Any]) -> None:
    """A fresh staging directory holding the bucket's results."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "parts").mkdir(parents=True)
    atomic_write_parquet(read_runs(url), root / "runs.parquet")
    atomic_write_parquet(read_samples(url), root / "samples.parquet")
    journal = storage.read_text(str(storage.join(url, "journal.jsonl")))
    if journal:
        atomic_write_bytes(root / "journal.jsonl", (journal.rstrip("\n") + "\n").encode())
    ResultsStore(root).create(meta)


def open_resume(url: str, plan: Plan, force: bool) -> tuple[ResultsStore, dict[str, Any], set[str]]:
    """Resume the sweep at ``url`` (see the module docstring); the checks of a local resume apply."""
    from energybench.engine.results_dir import open_resume as open_local

    meta = storage.read_json(str(storage.join(url, "metadata.json")))
    if not meta:
        raise ResultsError(f"{url} has no metadata.json: nothing to resume", hint="start a new sweep with --out")
    root = staging_dir(url)
    _send_leftovers(root, url, read_runs(url))
    _stage(root, url, meta)
    _, meta, done = open_local(root, plan, force)
    return UploadingStore(root, url), meta, done
