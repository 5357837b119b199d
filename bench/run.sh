#!/bin/sh
# make bench: every benchmark program of bench/ (build/bench/*, BENCH_ARGS
# passed on), then libkdcam against PyTorch and ONNX Runtime (bench/peers.py,
# PEERS_ARGS passed on, e.g. PEERS_ARGS=--quick).
#
# The peers table needs Debian's python3-torch (run with /usr/bin/python3,
# PYTHON to override); without it the libkdcam side of the table is still
# measured (peers.py --no-torch), and without any Python it is skipped with a
# note. ONNX Runtime is used when onnxruntime-node is installed in bench/
# (cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node) or
# on NODE_PATH. The exit status is non-zero if any part failed.
B=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
HERE=$(dirname "$0")
status=0

for b in "$B"/bench/*; do
    [ -f "$b" ] && [ -x "$b" ] || continue
    case "$b" in *.o|*.d) continue ;; esac
    echo "== $b $BENCH_ARGS"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
    "$b" $BENCH_ARGS || { echo "bench: $b failed" >&2; status=1; }
    echo
done

echo "== libkdcam vs PyTorch and ONNX Runtime (bench/peers.py $PEERS_ARGS)"
if [ ! -x "$PY" ]; then
    echo "bench: peers skipped: $PY not found (PyTorch comparison needs Debian's python3-torch)"
elif "$PY" -c 'import numpy, torch, torchvision' >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    BUILD="$B" "$PY" "$HERE/peers.py" $PEERS_ARGS || status=1
else
    echo "bench: PyTorch not installed for $PY (apt-get install python3-torch python3-torchvision): libkdcam side only"
    # shellcheck disable=SC2086
    BUILD="$B" "$PY" "$HERE/peers.py" --no-torch $PEERS_ARGS || status=1
fi
exit $status
