#!/bin/sh
# Render report.html in headless Chromium, take a screenshot and check the page is not blank and
# that its figures and results table rendered. Not part of CI; runnable by anyone with chromium
# (Debian: apt-get install -y chromium).
#
# usage: scripts/screenshot_report.sh [REPORT_HTML] [OUT_PNG]
#   OUT_PNG defaults to report_screenshot.png next to REPORT_HTML; without REPORT_HTML, a synthetic
#   results directory and its report are generated in a temp dir and the screenshot is written to
#   ./report_screenshot.png. Exit 0: the page renders (not blank, every figure decoded, table rows).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
py=${PYTHON:-"$repo/.venv/bin/python"}
[ -x "$py" ] || py=python3
browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
    for b in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
    done
fi
if [ -z "$browser" ]; then
    echo "screenshot_report: no chromium found (Debian: apt-get install -y chromium; or set CHROMIUM=...)" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

html=${1:-}
if [ -z "$html" ]; then
    echo "screenshot_report: generating a synthetic result set and its report in $work" >&2
    "$py" -m energybench.testing.synthetic_results "$work/results" >&2
    "$py" -m energybench report "$work/results" -o "$work/report" --format json >/dev/null
    html="$work/report/report.html"
fi
[ -f "$html" ] || { echo "screenshot_report: $html does not exist" >&2; exit 2; }
if [ -n "${2:-}" ]; then
    out=$2
elif [ -n "${1:-}" ]; then
    out="$(dirname "$html")/report_screenshot.png"
else
    out="$PWD/report_screenshot.png"  # the generated report lives in a temp dir that goes away
fi
html_abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")

flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
 --disable-component-update --disable-sync --hide-scrollbars --virtual-time-budget=8000"
# shellcheck disable=SC2086
"$browser" $flags --user-data-dir="$(mktemp -d -p "$work")" --window-size=1400,2600 \
    --screenshot="$out" "file://$html_abs" >"$work/chromium.log" 2>&1 || {
    echo "screenshot_report: chromium failed:" >&2; tail -20 "$work/chromium.log" >&2; exit 1; }
# shellcheck disable=SC2086
"$browser" $flags --user-data-dir="$(mktemp -d -p "$work")" --dump-dom "file://$html_abs" \
    >"$work/dom.html" 2>>"$work/chromium.log" || {
    echo "screenshot_report: chromium --dump-dom failed:" >&2; tail -20 "$work/chromium.log" >&2; exit 1; }

"$py" "$here/check_screenshot.py" "$out" "$work/dom.html"
