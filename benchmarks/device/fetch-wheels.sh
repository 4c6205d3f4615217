#!/bin/sh
# Download the wheels of wheels.txt for the GPU machine (CPython 3.12, manylinux x86_64) into the
# repository's .device/wheels/ (ignored), each without its dependencies (wheels.txt names every one
# that is needed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wheels="$here/../../.device/wheels"
mkdir -p "$wheels"
grep -v '^#' "$here/wheels.txt" | grep . | while read -r spec; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$wheels" "$spec"
done
ls "$wheels" | wc -l | xargs echo "wheels:"
du -sh "$wheels"
