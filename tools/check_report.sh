#!/bin/sh
# tools/check_report.sh DIR [SHOT.png]: opens DIR/report.html (kdcam analyze)
# in headless Chromium (Debian's `chromium`) with the network off and writes
# a screenshot. It fails if the page names a picture that is not beside it
# (checked on the file: headless Chromium does not log an image that fails
# to load, tried with a page naming a missing file) or if Chromium logs a
# failed network load. Not part of `make test` (CI has no browser); look at
# the screenshot afterwards.
set -e
D=${1:?usage: tools/check_report.sh DIR [SHOT.png]}
SHOT=${2:-$D/report-screenshot.png}
command -v chromium >/dev/null || { echo "check_report: chromium is not installed" >&2; exit 1; }
for f in $(grep -o 'src="[^"]*"' "$D/report.html" | sed 's/src="//; s/"$//'); do
    [ -f "$D/$f" ] || { echo "check_report: $D/report.html shows $f, which is missing" >&2; exit 1; }
done
UD=$(mktemp -d)
LOG=$(mktemp)
chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$UD" --window-size=1280,3000 --enable-logging=stderr --v=0 \
    --screenshot="$SHOT" "file://$(realpath "$D")/report.html" >"$LOG" 2>&1 || true
rm -rf "$UD"
if grep -q 'net::ERR\|Failed to load resource' "$LOG"; then
    grep 'net::ERR\|Failed to load resource' "$LOG" >&2
    rm -f "$LOG"
    exit 1
fi
rm -f "$LOG"
[ -s "$SHOT" ] || { echo "check_report: no screenshot written" >&2; exit 1; }
echo "check_report: $D/report.html loads with every resource; screenshot $SHOT"
