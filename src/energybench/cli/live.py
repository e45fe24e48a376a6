"""The terminal view of a running measurement (``measure`` and ``sweep`` alike), fed by the engine's
typed events. :data:`LiveView.SHOWN` and :data:`LiveView.IGNORED` together name every event type."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from energybench import events as ev
from energybench.cli.app import err_console
from energybench.metrics import METRICS


def point_label(p: Any) -> str:
    """A grid point in a few words: model, the knobs that are set, prompt, generation length."""
    parts = [p.model, f"t={p.n_threads}"]
    if p.n_gpu_layers:
        parts.append(f"ngl={p.n_gpu_layers}")
    parts += [f"b={p.n_batch}", f"ub={p.n_ubatch}", p.prompt.label(), f"n={p.n_gen}"]
    if p.flash_attn != "auto":
        parts.append(f"fa={p.flash_attn}")
    return " ".join(parts)


def run_line(e: ev.RunFinished) -> str:
    """One line on a finished run: its headline metrics, labelled by the vocabulary."""
    if not e.ok:
        return f"[failed] {e.row.get('error')}"
    est = " (estimate)" if e.row.get("flag_estimate") else ""
    parts = []
    for name, value in e.metrics.items():
        if value is not None:
            m = METRICS[name]
            number = f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
            parts.append(f"{m.label} {number} {m.unit}" + (est if m.unit.startswith("J") else ""))
    return " · ".join(parts)


class LiveView:
    """Progress bar, what is happening now, the current power, the last run and failures."""

    def __init__(self, total_runs: int, *, quiet: bool, transient: bool = False) -> None:
        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("runs"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=err_console)
        self.task = self.progress.add_task("runs", total=total_runs)
        self.status, self.point, self.last = "starting", "", ""
        self.failures = 0
        self.notes: list[str] = []  # warnings already shown
        self.power_w: Callable[[], Mapping[str, float]] | None = None
        self.live = (contextlib.nullcontext() if quiet else
                     Live(console=err_console, refresh_per_second=4, transient=transient,
                          get_renderable=self._render))

    def _render(self) -> Group:
        lines: list[Any] = [self.progress, Text(f"  {self.status}", style="cyan")]
        if self.point:
            lines.append(Text(f"  point: {self.point}"))
        power = self._power()
        if power:
            lines.append(Text(f"  power: {power}", style="magenta"))
        if self.last:
            lines.append(Text(f"  last:  {self.last}", style="green"))
        if self.failures:
            lines.append(Text(f"  failed runs: {self.failures}", style="red"))
        return Group(*lines)

    def _power(self) -> str:
        try:
            pw = self.power_w() if self.power_w else {}
        except Exception:  # noqa: BLE001 - the view must never break the measurement
            return ""
        return "  ".join(f"{k} {v:.1f} W" for k, v in pw.items())

    def __call__(self, event: ev.Event) -> None:
        handler = self.SHOWN.get(type(event))
        if handler is not None:
            handler(self, event)

    # ------------------------------------------------------------------ one method per shown event
    def _started(self, e: ev.Started) -> None:
        self.power_w = e.power_w
        self.progress.update(self.task, total=e.runs, completed=e.already_done)
        self.status = f"{e.points} point(s), up to {e.runs} runs -> {e.out_dir}"

    def _resolving(self, e: ev.ModelResolving) -> None:
        self.status = f"preparing model {e.model}"

    def _idle(self, e: ev.IdleStarted) -> None:
        self.status = f"idle baseline ({e.seconds:.0f} s): keep the machine quiet"

    def _loaded(self, e: ev.ModelLoaded) -> None:
        self.status = f"loaded {e.model} in {e.seconds:.1f} s"

    def _point(self, e: ev.PointStarted) -> None:
        self.point = f"#{e.index + 1} {point_label(e.point)}"

    def _unrunnable(self, e: ev.PointUnrunnable) -> None:
        self._shrink(e.runs_left_out)
        self.failures += 1
        self.last = f"[point failed] {e.error}"

    def _cooldown(self, e: ev.CooldownStarted) -> None:
        self.status = f"cooldown {e.seconds:.1f} s" if e.seconds is not None else \
            f"cooldown until power is back near idle (at most {e.max_s:g} s)"

    def _gap(self, e: ev.GapStarted) -> None:
        self.status = f"GPU protocol: random pause of {e.seconds:.2f} s"

    def _run_started(self, e: ev.RunStarted) -> None:
        self.status = ("warm-up " if e.warmup else "measuring ") + e.run_id

    def _run_finished(self, e: ev.RunFinished) -> None:
        self.progress.advance(self.task)
        self.failures += not e.ok
        self.last = run_line(e)

    def _adaptive(self, e: ev.AdaptiveStopped) -> None:
        self._shrink(e.runs_left_out)
        self.status = f"enough repetitions after {e.reps} (CI ±{e.ci_pct:.1f}%)"

    def _skipped(self, e: ev.PointSkipped) -> None:
        self._shrink(e.runs_left_out)
        self.status = f"point {e.point_id} skipped after {e.failures} failed runs"

    def _shrink(self, runs: int) -> None:
        """Runs the plan counted that will not happen leave the bar's total."""
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, total=max(0, total - runs))

    def _note(self, e: ev.Note) -> None:
        if not self.quiet:
            self.notes.append(e.message)
            self.progress.console.print(f"[yellow]warning:[/yellow] {e.message}", highlight=False)

    SHOWN: dict[type, Callable[[LiveView, Any], None]] = {
        ev.Started: _started, ev.ModelResolving: _resolving, ev.IdleStarted: _idle, ev.ModelLoaded: _loaded,
        ev.PointStarted: _point, ev.PointUnrunnable: _unrunnable, ev.CooldownStarted: _cooldown,
        ev.GapStarted: _gap, ev.RunStarted: _run_started, ev.RunFinished: _run_finished,
        ev.AdaptiveStopped: _adaptive, ev.PointSkipped: _skipped, ev.Note: _note,
    }
    #: Deliberately not shown: a resumed point with every run on disk changes nothing on screen
    #: (the progress bar started with it counted).
    IGNORED: frozenset[type] = frozenset({ev.PointAlreadyDone})
