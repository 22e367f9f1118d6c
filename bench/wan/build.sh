#!/bin/sh
# Builds the WAN forwarder (forwarder.c) into bench/wan/build/ (git ignores build/ directories).
# bench/wan/wan.ts runs this on first use and whenever forwarder.c is newer than the binary.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
${CC:-gcc} -O2 -Wall -Wextra -Werror -std=gnu11 -o "$here/build/forwarder.tmp" "$here/forwarder.c" -lm
mv "$here/build/forwarder.tmp" "$here/build/forwarder"
