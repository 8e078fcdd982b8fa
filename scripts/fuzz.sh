#!/usr/bin/env bash
# Runs the module's Go fuzz targets, one after the other (go test -fuzz takes
# a single target per run).
#
#   scripts/fuzz.sh                 every target for $FUZZTIME each (default 10s)
#   scripts/fuzz.sh 5m              every target for 5 minutes each
#   scripts/fuzz.sh 5m SplitJSON    only targets whose name matches the regexp
#
# Targets are found by their declarations (func FuzzX(f *testing.F) in
# *_test.go), so new ones are picked up without editing this script. New
# interesting inputs go to Go's cache ($(go env GOCACHE)/fuzz); a crasher is
# written to <package>/testdata/fuzz/<target>/ and fails the run: commit it,
# so that every later `go test` replays it as a regression test.
#
# scripts/test.sh (so CI) calls this with $FUZZTIME, default 3s there;
# FUZZTIME=0 skips fuzzing in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${1:-${FUZZTIME:-10s}}
filter=${2:-.}

# "dir name" pairs, sorted for a stable order.
mapfile -t targets < <(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' . |
  sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' |
  grep -v '^\.tools/' | grep -E " .*(${filter})" | sort -u)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets match '$filter'" >&2
  exit 1
fi

rc=0
failed=()
start=$SECONDS
for t in "${targets[@]}"; do
  dir=${t% *}
  name=${t#* }
  echo "== fuzz $name (./$dir, $fuzztime)"
  out=$(mktemp)
  ok=1
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "./$dir" 2>&1 | tee "$out" || ok=0
  # Go's fuzzing engine sometimes ends a clean run with "context deadline
  # exceeded" as the fuzz time runs out (no input failed, none written):
  # that is the engine, not the code; run the target once more.
  if [ $ok = 0 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
    echo "fuzz.sh: $name ended with the fuzzing engine's deadline error and no failing input; once more"
    ok=1
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "./$dir" || ok=0
  fi
  rm -f "$out"
  if [ $ok = 0 ]; then
    rc=1
    failed+=("$name (./$dir)")
  fi
done
echo "== fuzzed ${#targets[@]} targets in $((SECONDS - start)) s"
if [ $rc -ne 0 ]; then
  echo "fuzz.sh: failing targets: ${failed[*]}; crashers are under <package>/testdata/fuzz/" >&2
fi
exit $rc
