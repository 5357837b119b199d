#!/bin/sh
# The long fuzz campaign behind the counts in docs/security.md: each target
# for RUNS executions (default 10 million; images: IMAGE_RUNS, 1 million),
# one at a time, niced, from the committed seeds and dictionaries. Needs
# `make fuzz` first. Logs (with libFuzzer's final stats) go to
# build/fuzz/campaign/NAME.log, crashes to build/fuzz/campaign/NAME-crash-*.
#   sh tools/fuzz_campaign.sh [NAME...]      (default: every target)
runs=${RUNS:-10000000}
image_runs=${IMAGE_RUNS:-1000000}
out=build/fuzz/campaign
mkdir -p "$out"
[ $# -gt 0 ] || set -- $(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_||; s|\.c$||')
for name in "$@"; do
    n=$runs
    [ "$name" = image ] && n=$image_runs
    mkdir -p "$out/work/$name"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    echo "$(date -u +%H:%M:%S) $name: $n runs" >> "$out/progress"
    nice -n 10 "build/fuzz/fuzzers/$name" -runs="$n" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=20 -close_fd_mask=1 $dict \
        -artifact_prefix="$out/$name-" "$out/work/$name" "tests/fuzz/corpus/$name" \
        > "$out/$name.log" 2>&1
    echo "$(date -u +%H:%M:%S) $name: exit $?" >> "$out/progress"
done
