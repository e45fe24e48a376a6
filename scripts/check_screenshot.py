"""Check a report screenshot is not blank and that the rendered DOM shows figures and the table.

usage: python scripts/check_screenshot.py SCREENSHOT.png DOM.html
Exit 0 when fine, 1 with the reason otherwise. Used by scripts/screenshot_report.sh.
"""

from __future__ import annotations

import re
import sys

import numpy as np
from PIL import Image

MIN_STD = 12.0  # grey levels: a blank or single-colour page has ~0
MIN_COLOURS = 64


def check_image(path: str) -> list[str]:
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    problems = []
    std = float(img.std())
    n_colours = len(np.unique(img.reshape(-1, 3)[:: max(1, img.shape[0] * img.shape[1] // 200_000)], axis=0))
    print(f"screenshot {path}: {img.shape[1]}x{img.shape[0]} px, pixel std {std:.1f}, {n_colours} colours")
    if std < MIN_STD:
        problems.append(f"screenshot looks blank (pixel std {std:.1f} < {MIN_STD})")
    if n_colours < MIN_COLOURS:
        problems.append(f"screenshot has only {n_colours} colours (figures missing?)")
    return problems


def check_dom(path: str) -> list[str]:
    dom = open(path, encoding="utf-8", errors="replace").read()
    problems = []
    m = re.search(r'data-figures-loaded="(\d+)"', dom)
    total = len(re.findall(r"<figure ", dom))
    loaded = int(m.group(1)) if m else 0
    table = dom.split('id="results"', 1)[1].split("</table>", 1)[0] if 'id="results"' in dom else ""
    rows = len(re.findall(r"<tr", table))
    print(f"dom: {loaded}/{total} figures decoded, results table with {max(rows - 1, 0)} rows")
    if total and loaded < total:
        problems.append(f"only {loaded} of {total} figures rendered")
    if rows < 2:
        problems.append("the results table has no rows")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check_image(argv[1]) + check_dom(argv[2])
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if not problems:
        print("ok: the report renders")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
