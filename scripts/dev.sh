#!/usr/bin/env bash
# The one entry point behind the README's quick start. On a fresh clone it installs what is
# missing (Debian packages, pnpm through corepack, node_modules), builds every package with
# turbo, then runs one of:
#
#   bash scripts/dev.sh example   # npm run example: hello from a container (needs root)
#   bash scripts/dev.sh test      # npm test: typecheck + every test suite (needs root)
#   bash scripts/dev.sh bench     # npm run bench: the spawn benchmark, when bench/ exists
#   bash scripts/dev.sh setup     # only install and build
#
# Progress goes to stderr; the command's own output goes to stdout. Any failure exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PNPM_VERSION=12.4.2                       # keep in sync with "packageManager" in package.json
APT_PACKAGES=(busybox-static cmake gcc g++ libc6-dev make python3 runc iproute2 util-linux zstd nftables)

export DEBIAN_FRONTEND=noninteractive
export COREPACK_INTEGRITY_KEYS=0           # corepack's bundled keys fail to verify pnpm here
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0   # no "download pnpm?" prompt: CI has no stdin
export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1

if [ -t 2 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
stage() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf '\ndev.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: bash scripts/dev.sh <command>

  example   install, build, run examples/dist/hello.js               (npm run example)
  test      install, build, typecheck, run every test suite          (npm test)
  bench     install, build, run the spawn benchmark                   (npm run bench)
  setup     install and build only
EOF
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- 1. system packages --------------------------------------------------------------------
ensure_system() {
  stage "checking the system (Linux, Node >= 20, Debian packages)"
  [ "$(uname -s)" = Linux ] || die "ctr needs Linux (namespaces, cgroups, overlayfs); this is $(uname -s)"
  command -v node >/dev/null || die "node is not installed: install Node.js >= 20"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js >= 20 is required; found $(node --version)"
  note "node $(node --version), kernel $(uname -r)"

  if ! command -v dpkg >/dev/null; then
    note "no dpkg: not a Debian system, so nothing is installed for you."
    note "make sure these (or your distribution's equivalents) are installed: ${APT_PACKAGES[*]}"
    return
  fi

  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    note "Debian packages present: ${APT_PACKAGES[*]}"
    return
  fi
  if ! is_root; then
    die "missing Debian packages: ${missing[*]}
    install them with:  sudo apt-get update && sudo apt-get install -y ${missing[*]}
    (or run this command as root, which ctr needs anyway)"
  fi
  stage "installing Debian packages: ${missing[*]}"
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# --- 2. pnpm -------------------------------------------------------------------------------
# turbo runs every package script through a `pnpm` binary it looks up on PATH, so instead of a
# shell function we put a tiny wrapper in .cache/bin (git-ignored) and prepend it to PATH.
ensure_pnpm() {
  stage "setting up pnpm $PNPM_VERSION"
  local bin="$ROOT/.cache/bin"
  mkdir -p "$bin"
  if command -v corepack >/dev/null; then
    cat >"$bin/pnpm" <<'EOF'
#!/bin/sh
COREPACK_INTEGRITY_KEYS=0 COREPACK_ENABLE_DOWNLOAD_PROMPT=0 exec corepack pnpm "$@"
EOF
    note "using corepack (pinned by packageManager in package.json)"
  else
    cat >"$bin/pnpm" <<EOF
#!/bin/sh
exec npm exec --yes pnpm@$PNPM_VERSION -- "\$@"
EOF
    note "corepack not found: falling back to npm exec pnpm@$PNPM_VERSION"
  fi
  chmod +x "$bin/pnpm"
  export PATH="$bin:$PATH"
  local v
  v=$(pnpm --version </dev/null) || die "could not run pnpm (corepack pnpm / npm exec pnpm@$PNPM_VERSION)"
  note "pnpm $v"
}

# --- 3. dependencies and build -------------------------------------------------------------
install_and_build() {
  if [ -f pnpm-lock.yaml ]; then
    stage "installing dependencies (pnpm install --frozen-lockfile)"
    pnpm install --frozen-lockfile </dev/null >&2
  else
    stage "installing dependencies (pnpm install: no lockfile yet)"
    pnpm install </dev/null >&2
  fi
  stage "building every package (pnpm turbo run build: native addon first)"
  pnpm turbo run build </dev/null >&2
}

need_root() {
  is_root || die "'$1' needs root: it creates namespaces and mounts. Run it with sudo."
}

# --- commands ------------------------------------------------------------------------------
cmd_example() {
  stage "running the example: node examples/dist/hello.js"
  node examples/dist/hello.js
}

# Sums vitest's "Tests  ..." summary lines of every package in $1 and prints one line in the
# same format, e.g. "Tests  42 passed (42)" or "Tests  1 failed | 41 passed (42)".
summarize_tests() {
  sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1" | awk '
    /(^|[ :])Tests  +[0-9]/ {
      line = $0
      sub(/.*Tests  /, "", line)
      total_part = line; sub(/.*\(/, "", total_part); sub(/\).*/, "", total_part)
      total += total_part + 0
      n = split(line, parts, "|")
      for (i = 1; i <= n; i++) {
        if (match(parts[i], /[0-9]+ [a-z]+/)) {
          split(substr(parts[i], RSTART, RLENGTH), kv, " ")
          count[kv[2]] += kv[1]
        }
      }
      found = 1
    }
    END {
      if (!found) exit 1
      out = ""
      split("failed passed skipped todo", order, " ")
      for (i = 1; i <= 4; i++) {
        k = order[i]
        if (count[k] > 0 || (k == "passed" && count["failed"] == 0)) {
          out = out (out == "" ? "" : " | ") count[k] " " k
        }
      }
      printf "Tests  %s (%d)\n", out, total
      # The plain closing line CI reads in any language: "N passed, N failed[, N skipped]".
      line = sprintf("%d passed, %d failed", count["passed"], count["failed"])
      if (count["skipped"] > 0) line = line sprintf(", %d skipped", count["skipped"])
      printf "%s\n", line
    }'
}

# The suites that need a pure cgroup v2 hierarchy (this machine is hybrid) run again in a
# throwaway QEMU guest (scripts/vm-test): @ctr/cgroups whole, and the spawn placement tests.
# CTR_SKIP_VM=1 skips them (for a quick local run; CI never sets it).
V2_SUITES='cd packages/cgroups && ./node_modules/.bin/vitest run && cd ../namespaces && ./node_modules/.bin/vitest run test/cgroup-placement.test.ts'

cmd_test() {
  stage "typechecking every package (pnpm turbo run typecheck)"
  pnpm turbo run typecheck </dev/null >&2

  stage "running every test suite, one package at a time (pnpm turbo run test --concurrency=1)"
  local log status vm_status=0 summary
  log=$(mktemp "${TMPDIR:-/tmp}/ctr-test.XXXXXX")
  set +e
  pnpm turbo run test --concurrency=1 </dev/null 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  if [ "${CTR_SKIP_VM:-0}" != 1 ]; then
    stage "running the cgroup v2 suites in a QEMU guest (scripts/vm-test; the first run fetches a kernel)"
    VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-2400} scripts/vm-test "$ROOT" -- "$V2_SUITES" </dev/null 2>&1 | sed -u 's/^/[cgroup v2 guest] /' | tee -a "$log"
    vm_status=${PIPESTATUS[0]}
  else
    note "CTR_SKIP_VM=1: the cgroup v2 suites in the QEMU guest were skipped"
  fi
  set -e
  summary=$(summarize_tests "$log") || summary=""
  rm -f "$log"

  if [ "$status" -ne 0 ] || [ "$vm_status" -ne 0 ]; then
    stage "tests FAILED (host suites: exit $status, cgroup v2 guest: exit $vm_status)"
    [ -n "$summary" ] && printf '%s\n' "$summary"
    exit 1
  fi
  [ -n "$summary" ] || die "the test run printed no vitest summary ('Tests  N passed (N)')"
  local failed
  failed=$(printf '%s\n' "$summary" | tail -n 1 | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  if [ "$failed" != 0 ]; then stage "tests FAILED"; printf '%s\n' "$summary"; exit 1; fi
  stage "all test suites passed"
  printf '%s\n' "$summary"
}

cmd_bench() {
  [ -f bench/dist/spawn/index.js ] || die "no benchmark built yet (bench/dist/spawn/index.js is missing)"
  stage "running the spawn benchmark: node bench/dist/spawn/index.js"
  node bench/dist/spawn/index.js
}

main() {
  local cmd=${1:-}
  case $cmd in
    example | test | bench | setup) ;;
    -h | --help | help) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
  case $cmd in example | test | bench) need_root "$cmd" ;; esac
  ensure_system
  ensure_pnpm
  install_and_build
  case $cmd in
    example) cmd_example ;;
    test) cmd_test ;;
    bench) cmd_bench ;;
    setup) stage "ready: dependencies installed, every package built" ;;
  esac
}

main "$@"
