#!/bin/sh
# Runs every regression input (tests/fuzz/regress/*/*) and every seed
# (tests/fuzz/corpus/*/*) through every fuzz target given (the plain-driver
# builds, build*/tests/fuzz/plain_NAME). Exits non-zero if any crashes.
fail=0
for t in "$@"; do
    if ! "$t" tests/fuzz/regress/* tests/fuzz/corpus/* >/dev/null 2>"$t.log"; then
        echo "fuzz regression: $t failed:"; tail -n 30 "$t.log"; fail=1
    fi
done
[ "$fail" -eq 0 ] && echo "fuzz regression: $# targets, all inputs passed"
exit "$fail"
