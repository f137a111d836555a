#!/bin/sh
# Runs each fuzz target in turn for SECONDS (libFuzzer -max_total_time) and
# prints, per target, what libFuzzer's final stats say: executions, their
# rate, coverage (cov: edges, ft: features), the corpus, and whether it
# crashed. `make fuzz-long` calls it (FUZZ_SECONDS, default 600).
#
#   tests/fuzz/fuzz-long.sh BUILD_DIR SECONDS TARGET...
#
# Each target starts from its checked-in corpus (tests/fuzz/corpus/NAME,
# read only) and grows a working one in BUILD_DIR/fuzz/long/NAME, kept
# between runs; its log is BUILD_DIR/fuzz/long/NAME.log and a crashing
# input BUILD_DIR/fuzz/long/NAME.crash-*. UBSan's reports do not stop a
# fuzz build (its checks recover): they are counted, with their stacks in
# the log. Exits 1 when a target crashed, after running them all.
set -u
[ $# -ge 3 ] || { echo "usage: $0 BUILD_DIR SECONDS TARGET..." >&2; exit 2; }
b=$1
secs=$2
shift 2
long=$b/fuzz/long
mkdir -p "$long"
failed=0
table=$(mktemp)
trap 'rm -f "$table"' EXIT
printf '%-20s %6s %10s %8s %6s %7s %7s %5s  %s\n' target seconds execs \
    execs/s cov ft corpus ubsan result >"$table"
for t in "$@"; do
    bin=$b/fuzz/$t
    log=$long/$t.log
    work=$long/$t
    mkdir -p "$work"
    seeds=
    [ -d "tests/fuzz/corpus/$t" ] && seeds=tests/fuzz/corpus/$t
    echo "fuzz-long: $t for ${secs}s" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086
    UBSAN_OPTIONS=print_stacktrace=1 "$bin" -max_total_time="$secs" \
        -print_final_stats=1 -timeout=60 -rss_limit_mb=2048 \
        -artifact_prefix="$long/$t." "$work" $seeds >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    # The last status line ("#N DONE cov: C ft: F corp: U/S ...").
    last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    [ -n "$execs" ] || execs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
    ubsan=$(grep -c 'runtime error:' "$log")
    result=ok
    if [ $rc -ne 0 ]; then
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        result="CRASH (rc $rc) ${crash:-see $log}"
        failed=1
    fi
    printf '%-20s %6s %10s %8s %6s %7s %7s %5s  %s\n' "$t" "$took" \
        "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$ubsan" "$result" >>"$table"
done
cat "$table"
exit $failed
