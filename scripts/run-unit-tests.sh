#!/bin/sh
# usage: run-unit-tests.sh DIR NAME...   Runs every cmocka binary DIR/NAME,
# keeps going past failures, and ends with one "N passed, N failed" line
# counting test binaries.
dir=$1; shift
pass=0; fail=0; failed=
for t in "$@"; do
    if "$dir/$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "unit: failing:$failed"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
