#!/bin/sh
# make fuzz-smoke: runs each libFuzzer target (BUILD/fuzzers/NAME) for
# FUZZ_SECONDS seconds from its committed seeds and dictionary. New inputs
# go to BUILD/work/NAME (the committed corpus is not touched); a crash is
# saved as BUILD/artifacts/NAME-crash-* and fails the run.
build=$1; shift
secs=${FUZZ_SECONDS:-30}
fail=0
for name in "$@"; do
    work=$build/work/$name
    mkdir -p "$work" "$build/artifacts"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    echo "fuzz-smoke: $name for ${secs}s"
    if ! "$build/fuzzers/$name" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
            -close_fd_mask=1 $dict -artifact_prefix="$build/artifacts/$name-" \
            "$work" "tests/fuzz/corpus/$name" 2>"$build/$name.log"; then
        echo "fuzz-smoke: $name FAILED"; tail -n 40 "$build/$name.log"; fail=1
    else
        grep -E "^(Done|#[0-9]+ *DONE)" "$build/$name.log" | tail -n 1
    fi
done
exit "$fail"
