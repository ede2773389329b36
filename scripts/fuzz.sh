#!/usr/bin/env bash
# A short run of every fuzz target in the repository (both modules), FUZZTIME each (default
# 4s). `go test -fuzz` takes one target at a time and links a test binary
# on every call, so each package's instrumented test binary is built once
# and run per target. Targets are found by name (func FuzzXxx in a
# *_test.go file): a new one is included without editing anything; keep
# FUZZTIME × targets under a minute.
#
# Each run starts from the seeds only (f.Add and testdata/fuzz/), not from
# the corpus earlier runs left in GOCACHE, so its length stays bounded. A
# crasher is written to the package's testdata/fuzz/, as `go test -fuzz`
# does, and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-4s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
for dir in $(grep -rl --include='*_test.go' --exclude-dir=node_modules '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	# Built from inside the directory, so packages of nested modules (sdk/) build too.
	(cd "$dir" && "$GO" test -c -fuzz=. -o "$tmp/pkg.test" .)
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go); do
		echo "fuzz: $dir $name ($FUZZTIME)"
		if (cd "$dir" && "$tmp/pkg.test" -test.run '^$' -test.fuzz "^$name\$" -test.fuzztime "$FUZZTIME" \
			-test.fuzzminimizetime 1s -test.fuzzcachedir "$tmp/corpus") >"$tmp/out" 2>&1; then
			passed=$((passed + 1))
			continue
		fi
		# Go before 1.27 may stop a healthy run at the end of -fuzztime with
		# a bare "context deadline exceeded" as the only failure
		# (golang/go#75804): no input failed.
		if awk '/^--- FAIL/ { getline why; if (why ~ /^[ \t]*context deadline exceeded$/) flake = 1; else real = 1 }
			/Failing input written|failure while testing seed corpus/ { real = 1 }
			END { exit !(flake && !real) }' "$tmp/out"; then
			echo "fuzz: $name: stopped by golang/go#75804 at the deadline, no failing input"
			passed=$((passed + 1))
			continue
		fi
		grep -v '^fuzz: elapsed' "$tmp/out"
		exit 1
	done
done
echo "fuzz: $passed passed, 0 failed"
