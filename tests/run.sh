#!/usr/bin/env bash
# Runs the unit tests (BPF_PROG_RUN fixtures and fuzz) and every namespace
# integration test, then prints one line: "N passed, N failed, N skipped".
#   tests/run.sh [-k PATTERN]   only integration tests whose name matches
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$REPO/build}
PATTERN=""
[ "${1:-}" = "-k" ] && PATTERN=${2:-}

passed=0 failed=0 skipped=0
failures=()

echo "== unit: $BUILD/stcp_unit"
unit_out=$(mktemp)
"$BUILD/stcp_unit" 2>&1 | tee "$unit_out"
unit_rc=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$unit_out" | tail -n 1)
rm -f "$unit_out"
if [ -n "$summary" ]; then
	up=$(echo "$summary" | awk '{print $1}')
	uf=$(echo "$summary" | awk '{print $3}')
	passed=$((passed + up))
	failed=$((failed + uf))
	[ "$uf" != 0 ] && failures+=("unit ($uf)")
fi
if [ "$unit_rc" != 0 ] && { [ -z "$summary" ] || [ "${uf:-0}" = 0 ]; }; then
	failed=$((failed + 1))
	failures+=("unit runner exited $unit_rc")
fi

for t in "$REPO"/tests/integ/test_*.sh; do
	name=$(basename "$t" .sh)
	[ -n "$PATTERN" ] && [[ "$name" != *$PATTERN* ]] && continue
	echo "== integ: $name"
	start=$(date +%s)
	timeout --kill-after=10 600 "$t"
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0)
		echo "ok - $name (${secs}s)"
		passed=$((passed + 1))
		;;
	77)
		echo "skip - $name"
		skipped=$((skipped + 1))
		;;
	*)
		echo "not ok - $name (exit $rc, ${secs}s)"
		failed=$((failed + 1))
		failures+=("$name")
		;;
	esac
done

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
