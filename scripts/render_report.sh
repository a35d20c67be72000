#!/usr/bin/env bash
# Rebuild a run's report.html and render it to a PNG with headless Chromium, to check that the
# self-contained report (inline CSS, base64 PNG plots) displays as intended.
#
# Usage:  scripts/render_report.sh RUN_DIR [OUT.png] [WIDTHxHEIGHT]
#   RUN_DIR        a finished run folder (results.json, recipe.resolved.yaml, metrics.jsonl)
#   OUT.png        screenshot path (default: RUN_DIR/report.png)
#   WIDTHxHEIGHT   browser window (default 1200x3000; the page is cut at HEIGHT pixels)
#
# Needs Chromium (Debian: apt-get install chromium). DOMAINTUNE overrides the command used to
# rebuild the report (default: "domaintune", e.g. DOMAINTUNE=".venv/bin/domaintune").
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
run_dir=$1
out=${2:-$run_dir/report.png}
size=${3:-1200x3000}

browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
done
if [[ -z $browser ]]; then
  echo "error: no chromium found → apt-get install chromium (Debian) or install Chrome" >&2
  exit 2
fi

${DOMAINTUNE:-domaintune} report "$run_dir"
report=$(cd "$run_dir" && pwd)/report.html
# --no-sandbox: Chromium refuses to run as root (containers) with its sandbox on.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="${size/x/,}" --screenshot="$out" "file://$report" 2>/dev/null
echo "rendered $report → $out"
