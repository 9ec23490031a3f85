#!/usr/bin/env bash
# Controls for the CI guards that need a whole run: each breaks a throwaway copy of HEAD on purpose,
# runs the one test command on the affected package (scripts/test.sh --filter), and checks that the run
# goes red and that its closing block names what broke. (The guards of the closing line itself - a
# failing setup, an unlisted skip, success:false, a missing report - have faster controls in
# scripts/test-summary.test.mjs, run by every `pnpm test`.)
#
#   bash scripts/ci-controls.sh            every control (a few minutes)
#   bash scripts/ci-controls.sh typecheck  one of: capability, typecheck, setup
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
only="${1:-}"
failures=0

# control NAME PACKAGE EXPECTED-PATTERN SABOTAGE-COMMAND
control() {
  local name="$1" package="$2" expected="$3" sabotage="$4"
  [ -n "$only" ] && [ "$only" != "$name" ] && return 0
  local copy
  copy="$(mktemp -d /tmp/tb-control-XXXXXX)"
  git -C "$repo" worktree add --detach --quiet "$copy" HEAD
  (
    cd "$copy" || exit 1
    pnpm install --frozen-lockfile --offline --silent >/dev/null 2>&1 || pnpm install --frozen-lockfile --silent >/dev/null
    bash -c "$sabotage"
    bash scripts/test.sh --filter="$package" >"$copy/control.log" 2>&1
    echo $? >"$copy/control.code"
  )
  local code
  code="$(cat "$copy/control.code")"
  local closing
  closing="$(tail -n 1 "$copy/control.log")"
  if [ "$code" -ne 0 ] && grep -Eq "$expected" "$copy/control.log" && ! echo "$closing" | grep -q " 0 failed"; then
    echo "control $name: caught (exit $code): $(grep -Em1 "$expected" "$copy/control.log" | sed 's/^ *//') | $closing"
  else
    echo "control $name: NOT caught (exit $code; closing line: $closing); log kept at $copy/control.log"
    failures=$((failures + 1))
  fi
  [ "$failures" -eq 0 ] && git -C "$repo" worktree remove --force "$copy"
}

# a store that stops declaring a capability fails its own conformance suite instead of skipping tests
control capability @token-broker/storage-sqlite \
  "the store declares the capabilities the suite was given: failed" \
  "sed -i 's/crossProcessLeases: true, durable: true }/crossProcessLeases: false, durable: true }/' packages/storage-sqlite/src/SqliteGrantStore.ts"

# a type error in a test file (vitest does not check types): the typecheck step fails and is named
control typecheck @token-broker/storage-sqlite \
  "step typecheck failed" \
  "printf '\nconst mistyped: number = \"not a number\"\nvoid mistyped\n' >> packages/storage-sqlite/test/SqliteGrantStore.conformance.test.ts"

# a store whose database cannot be reached (the layer the suite builds fails): red, and the file named
control setup @token-broker/storage-postgres \
  "storage-postgres/test/PgGrantStore.conformance.test.ts.*(failed|without a failed test)" \
  "sed -i 's|const options = { url: databaseUrl,|const options = { url: \"postgres://postgres@127.0.0.1:1/test\",|' packages/storage-postgres/test/PgGrantStore.conformance.test.ts"

if [ "$failures" -gt 0 ]; then
  echo "$failures control(s) not caught"
  exit 1
fi
echo "every control was caught"
