#!/usr/bin/env bash
# The one test command. README's `pnpm test` and CI's `.ci/run` both run this script, so what passes for a
# user on a fresh machine is what CI judges. It:
#   1. installs what is missing: pnpm (the pinned version), the workspace's packages, and Debian's
#      chromium (the MCP server's consent tests), tmux (the CLI's terminal test) and glewlwyd (the
#      interop suite's independent OpenID Provider);
#   2. starts PostgreSQL and MariaDB where they do not answer;
#   3. runs lint, typecheck, every package's tests (never from turbo's cache) and the short chaos run;
#   4. prints the closing line, last: every step and every package's vitest report added up
#      (scripts/test-summary.mjs), naming each failed step, file and test, and each unexpected skip.
#
#   pnpm test                              everything above
#   pnpm test -- --filter=<package>        only that package's tests (and lint, typecheck), no chaos run
#   pnpm test -- --no-chaos                everything but the chaos run
#
# Every step runs even when an earlier one failed; the exit code is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1

PNPM_VERSION=10.34.9
filter=""
chaos=1
for arg in "$@"; do
  case "$arg" in
    --) ;;
    --filter=*) filter="${arg#--filter=}"; chaos=0 ;;
    --no-chaos) chaos=0 ;;
    *) echo "scripts/test.sh: unknown argument '$arg' (known: --filter=<package>, --no-chaos)" >&2; exit 2 ;;
  esac
done

steps_file="$(pwd)/test-results/steps.txt"
rm -rf packages/*/test-results apps/*/test-results tooling/*/test-results bench/test-results test-results
mkdir -p test-results
: >"$steps_file"

# run_step NAME COMMAND...: runs the command, records "NAME<TAB>exit code<TAB>seconds" for the summary.
run_step() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "::: $name: $*"
  "$@"
  local code=$?
  printf '%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - started))" >>"$steps_file"
  [ "$code" -eq 0 ] || echo "::: $name failed (exit $code)"
  return 0
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root to run: $* (run as root, or install it yourself)" >&2
    return 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

setup_tools() {
  if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
    npm install -g "pnpm@$PNPM_VERSION" || return 1
  fi
  pnpm install --frozen-lockfile || return 1
  # Debian's chromium: no browser download is possible here, and Playwright only drives a system browser
  if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then apt_install chromium || return 1; fi
  command -v tmux >/dev/null 2>&1 || apt_install tmux || return 1
  # Debian's Glewlwyd: the interop suite's independent OpenID Provider (packages/interop)
  if [ -z "${GLEWLWYD_PATH:-}" ] && ! command -v glewlwyd >/dev/null 2>&1; then apt_install glewlwyd || return 1; fi
}

answers() { # answers PORT: something accepts TCP connections on 127.0.0.1:PORT
  node -e '
    const s = require("node:net").connect(Number(process.argv[1]), "127.0.0.1")
    s.on("connect", () => process.exit(0)); s.on("error", () => process.exit(1))
    setTimeout(() => process.exit(1), 2000)' "$1"
}

wait_for() { # wait_for PORT NAME
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 1; done
  echo "$2 does not answer on 127.0.0.1:$1 after 60 s" >&2
  return 1
}

setup_services() {
  local code=0
  if [ -z "${DATABASE_URL:-}" ] && ! answers 5432; then
    echo "PostgreSQL does not answer on 127.0.0.1:5432; starting it"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for 5432 PostgreSQL || code=1
  fi
  if ! answers 3306 && [ -x /usr/sbin/mariadbd ]; then
    echo "MariaDB does not answer on 127.0.0.1:3306; starting it"
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    wait_for 3306 MariaDB || code=1
  fi
  return "$code"
}

run_step setup-tools setup_tools
run_step setup-services setup_services
run_step ci-guards node --test scripts/test-summary.test.mjs
run_step lint pnpm lint
if [ -n "$filter" ]; then
  run_step typecheck pnpm exec turbo run typecheck --filter="$filter"
  run_step tests pnpm exec turbo run test --continue --force --filter="$filter"
else
  run_step typecheck pnpm exec turbo run typecheck
  # three packages at a time: on 2 cores more only adds contention (and timeouts), not speed
  run_step tests pnpm exec turbo run test --continue --force --concurrency="${TEST_CONCURRENCY:-3}"
  [ "$chaos" -eq 1 ] && run_step chaos pnpm chaos --short
fi

node scripts/test-summary.mjs --steps "$steps_file" ${filter:+--filter="$filter"}
