"""Which reader a log needs: ``--format``, or told from the file's first lines (``auto``)."""

from __future__ import annotations

from pathlib import Path

from energybench.attach import nvidia_smi, powerlog, wallcsv
from energybench.attach.logs import LogData, LogFormatError
from energybench.errors import UsageError

FORMATS = ("auto", powerlog.FORMAT, nvidia_smi.FORMAT, wallcsv.FORMAT)


def detect(path: Path) -> str:
    """PowerLog when a row starts with ``System Time``; nvidia-smi when a header names ``timestamp``
    and a ``power.draw`` field; else a wall-meter CSV."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192).decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot read it ({exc.strerror or exc})") from exc
    if powerlog.looks_like(head):
        return powerlog.FORMAT
    if nvidia_smi.looks_like(head):
        return nvidia_smi.FORMAT
    return wallcsv.FORMAT


def read_log(path: str | Path, fmt: str = "auto", *, time_column: str | None = None,
             power_column: str | None = None) -> LogData:
    """Parse one log in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = Path(path)
    kind = detect(path) if fmt == "auto" else fmt
    if kind == powerlog.FORMAT:
        return powerlog.read_powerlog(path)
    if kind == nvidia_smi.FORMAT:
        return nvidia_smi.read_nvidia_smi(path)
    return wallcsv.read_wall_csv(path, time_column=time_column, power_column=power_column)
