"""Number formatting shared by the Markdown, HTML and console outputs."""

from __future__ import annotations

import math
from typing import Any


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, no scientific notation for everyday magnitudes.

    None/NaN -> '–'. Integers stay integers.
    """
    if type(x) is not float:  # floats are nearly every call (tens of thousands in a large report): one test
        if x is None:
            return "–"
        if isinstance(x, bool):
            return "yes" if x else "no"
        if isinstance(x, int):
            return str(x)
        try:
            x = float(x)
        except (TypeError, ValueError):
            return str(x)
    if x != x or x in _INF:
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 6 or mag <= -4:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - mag)
    return f"{x:,.{decimals}f}" if mag >= 4 else f"{x:.{decimals}f}"


_INF = (math.inf, -math.inf)


def fmt_ci(value: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """'1.23 [1.20, 1.27]' (the CI only when both bounds exist)."""
    head = fmt_num(value, digits)
    if lo is None or hi is None or head == "–":
        return head
    try:
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            return head
    except (TypeError, ValueError):
        return head
    return f"{head} [{fmt_num(lo, digits)}, {fmt_num(hi, digits)}]"


def fmt_pct(x: Any, digits: int = 0) -> str:
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(v) else f"{v * 100:.{digits}f} %"
