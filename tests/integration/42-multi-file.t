#!/usr/bin/env bash
# Programs of several files (docs/lang-conf.md): examples/multi/LANG/, the
# main file first, each language whose image is built (make test builds
# them all). Each prints "hello, world (from <the other file>)", which only
# the other file's code can make. Then JavaScript's and Java's hello world.
set -euo pipefail
. tests/integration/boot-lib.sh
boot_require
ran=0
for lang in go c rust python javascript java; do
    if ! image_built "$lang"; then
        echo "note: no $lang image, its multi-file example not run"
        continue
    fi
    dir=examples/multi/$lang
    main=$(ls "$dir" | grep -E '^(main\.|Main\.java$)')
    files=("$dir/$main")
    for f in "$dir"/*; do [ "$f" = "$dir/$main" ] || files+=("$f"); done
    other=$(ls "$dir" | grep -vE '^(main\.|Main\.java$)' | grep -vE '\.h$')
    rc=0
    start=$(date +%s.%N)
    timeout 900 "$RUNVM" --lang "$lang" "${files[@]}" >"$T/$lang.out" 2>"$T/$lang.err" </dev/null || rc=$?
    [ "$rc" = 0 ] || { tail -20 "$T/$lang.err"; fail "$lang multi-file: status $rc"; }
    want="hello, world (from $other)"
    [ "$(cat "$T/$lang.out")" = "$want" ] || fail "$lang multi-file: printed '$(head -c 200 "$T/$lang.out")', not '$want'"
    echo "ok: $lang multi-file (${files[*]##*/}) in $(echo "$(date +%s.%N) - $start" | bc) s"
    ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "skip: no language image built"; exit 77; }
for hello in javascript:initramfs-builder/langs/hello/main.js java:initramfs-builder/langs/hello/Main.java; do
    lang=${hello%%:*}
    image_built "$lang" || continue
    rc=0
    timeout 900 "$RUNVM" --lang "$lang" "${hello#*:}" >"$T/h.out" 2>"$T/h.err" </dev/null || rc=$?
    [ "$rc" = 0 ] && [ "$(cat "$T/h.out")" = "hello, world" ] || { tail "$T/h.err"; fail "$lang hello: $rc $(head -c 200 "$T/h.out")"; }
    echo "ok: $lang hello world"
done
# A compile error in the other file is the build's, with its name.
if image_built java; then
    printf 'public class Greet { static String greet(String w) { return w }\n}\n' >"$T/Greet.java"
    rc=0
    timeout 900 "$RUNVM" --lang java examples/multi/java/Main.java "$T/Greet.java" >"$T/j.out" 2>"$T/j.err" </dev/null || rc=$?
    [ "$rc" = 126 ] && grep -q "Greet.java" "$T/j.err" || { tail "$T/j.err"; fail "java compile error in Greet.java: status $rc"; }
    echo "ok: java compile error in the other file: status 126, named"
fi
