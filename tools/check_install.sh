#!/bin/sh
# Installs into a temporary prefix, compiles README.md's C example against it
# through pkg-config, runs it on a seeded model, and uninstalls. Used by CI.
set -e
B=${1:-build}
# build what this script runs: it must not depend on what ran before it
make -s BUILD="$B" "$B/kdcam" "$B/kdc-genweights" >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
make -s install PREFIX="$T/prefix" >/dev/null
sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' > "$T/example.c"
PC="$T/prefix/lib/pkgconfig"
cc -std=c11 -Wall -Wextra -o "$T/example" "$T/example.c" $(PKG_CONFIG_PATH="$PC" pkg-config --cflags --libs kdcam)
# Static: the archive plus what `pkg-config --static` says it needs
# (Libs.private, and Requires.private: libjpeg unless built with JPEG=stb).
cc -std=c11 -Wall -Wextra -o "$T/example_static" "$T/example.c" \
    $(PKG_CONFIG_PATH="$PC" pkg-config --static --cflags --libs kdcam | sed 's/-lkdcam/-l:libkdcam.a/')
"$B/kdc-genweights" resnet50 "$T/w.safetensors" 50
for ex in example example_static; do
    out=$(LD_LIBRARY_PATH="$T/prefix/lib" "$T/$ex" "$T/w.safetensors" examples/images/chelsea.png)
    echo "README example ($ex): $out"
    [ "$out" = "layer4: 1 x 2048 x 7 x 7" ]
done
# The static one does not load libkdcam.so
if ldd "$T/example_static" | grep -q libkdcam; then
    echo "example_static is linked to libkdcam.so"; exit 1
fi
make -s uninstall PREFIX="$T/prefix"
left=$(find "$T/prefix" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "uninstall left $left files"; exit 1; }
echo "install/uninstall OK"
