#!/bin/sh
# Builds ctr-init, the tiny static PID 1 of `run({ init: true })` / `ctr run --init`.
#
#   native/init/build.sh [OUTPUT]      (default: native/init/build/ctr-init)
#
# Static, so that it runs in any root filesystem (glibc's libc.a: Debian's libc6-dev).
# CC and CFLAGS are honoured.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build/ctr-init}
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
${CC:-cc} -static -Os -s -Wall -Wextra -Werror ${CFLAGS:-} -o "$tmp" "$here/ctr-init.c"
mv -f "$tmp" "$out"
echo "$out"
