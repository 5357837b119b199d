#!/bin/sh
# gen_cli_doc.sh - the help blocks of docs/cli.md from the tool's real --help.
#
#   tools/gen_cli_doc.sh [--check] [KDCAM]
#
# Every block that follows a line "<!-- kdcam-help: CMD -->" in docs/cli.md
# (CMD a command, or --help for `kdcam --help`) is replaced by the output of
# `KDCAM CMD --help` (KDCAM: the argument, else $KDCAM, else build/kdcam).
# Every command that `kdcam --help` lists must have such a block. With
# --check nothing is written: the exit status is 1, with the differences,
# when the file disagrees with the tool (make test runs this, through
# tests/test_cli_doc.c). DOC=FILE works on another file.
set -eu
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
kdcam=${1:-${KDCAM:-build/kdcam}}
doc=${DOC:-docs/cli.md}
[ -x "$kdcam" ] || { echo "gen_cli_doc.sh: $kdcam is not an executable (make first)" >&2; exit 2; }
[ -r "$doc" ] || { echo "gen_cli_doc.sh: cannot read $doc" >&2; exit 2; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk -v kdcam="$kdcam" '
    /^<!-- kdcam-help: [^ ]+ -->$/ { print; cmd = $3; want = 1; next }
    want == 1 && /^```$/ {
        print
        c = (cmd == "--help") ? kdcam " --help" : kdcam " " cmd " --help"
        n = 0
        while ((c | getline line) > 0) { print line; n++ }
        if (close(c) != 0 || n == 0) { print "gen_cli_doc.sh: " c " failed" > "/dev/stderr"; bad = 1 }
        want = 0; skip = 1; next
    }
    skip == 1 { if ($0 == "```") { print; skip = 0 } ; next }
    { print }
    END { if (bad || skip || want) exit 1 }
' "$doc" > "$tmp" || { echo "gen_cli_doc.sh: $doc: a help block is unterminated or --help failed" >&2; exit 1; }
# every command of `kdcam --help` has its block
missing=""
for c in $("$kdcam" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }'); do
    grep -q "^<!-- kdcam-help: $c -->\$" "$doc" || missing="$missing $c"
done
if [ -n "$missing" ]; then
    echo "gen_cli_doc.sh: $doc has no help block (<!-- kdcam-help: CMD -->) for:$missing" >&2
    exit 1
fi
if [ $check = 1 ]; then
    if ! cmp -s "$doc" "$tmp"; then
        echo "gen_cli_doc.sh: $doc disagrees with the tool's --help (run tools/gen_cli_doc.sh):" >&2
        diff -u "$doc" "$tmp" | head -40 >&2 || true
        exit 1
    fi
    exit 0
fi
cat "$tmp" > "$doc"
