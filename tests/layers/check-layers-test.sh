#!/bin/sh
# scripts/check-layers against small trees made for it: a clean one passes;
# an upward include, a sideways one (arch <-> devices), a folder with no
# layer, and a module.mk building another folder's source each fail, naming
# the culprit. Part of `make check`.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

# tree NAME: a fresh git tree in $T/NAME with the script and a clean layout.
tree() {
    d=$T/$1
    mkdir -p "$d/scripts" "$d/core" "$d/arch" "$d/devices" "$d/vmm" "$d/protocol"
    cp "$top/scripts/check-layers" "$d/scripts/"
    printf '#include "protocol/p.h"\n' >"$d/core/c.h"
    printf '#include "core/c.h"\n' >"$d/arch/a.h"
    printf '#include "core/c.h"\n' >"$d/devices/d.h"
    printf '#include "arch/a.h"\n#include "devices/d.h"\n#include "v.h"\n' >"$d/vmm/v.c"
    : >"$d/vmm/v.h"
    : >"$d/protocol/p.h"
    printf 'VMM_SRCS := vmm/v.c\nRUNVM_SRCS += $(VMM_SRCS)\n' >"$d/vmm/module.mk"
    printf 'UNIT_TESTS += t\nt_SRCS := core/c.c vmm/v.c\n' >>"$d/vmm/module.mk"
    git -C "$d" init -q && git -C "$d" add -A
}

# expect NAME WANT(0|1) PATTERN: runs the check in tree NAME.
expect() {
    git -C "$T/$1" add -A
    rc=0
    "$T/$1/scripts/check-layers" >"$T/$1.out" 2>&1 || rc=$?
    if [ "$rc" != "$2" ] || ! grep -q -- "$3" "$T/$1.out"; then
        echo "check-layers-test: $1: status $rc (want $2), output:" >&2
        cat "$T/$1.out" >&2
        fails=$((fails + 1))
    else
        echo "check-layers-test: ok: $1"
    fi
}

tree clean
expect clean 0 'includes point down only'

tree upward
printf '#include "vmm/v.h"\n' >>"$T/upward/core/c.h"
expect upward 1 'core/c.h:2 includes vmm/v.h: core may not include vmm'

tree sideways
printf '#include "devices/d.h"\n' >>"$T/sideways/arch/a.h"
expect sideways 1 'arch may not include devices'

tree homeless
mkdir -p "$T/homeless/extra" && : >"$T/homeless/extra/x.c"
expect homeless 1 'extra/ has C files but no layer'

tree foreign
printf 'RUNVM_SRCS += core/c.c \\\n    vmm/v.c\n' >"$T/foreign/devices/module.mk"
expect foreign 1 'devices/module.mk builds core/c.c'

tree guest
mkdir -p "$T/guest/guest-agent"
printf '#include "vmm/v.h"\n' >"$T/guest/guest-agent/g.c"
expect guest 1 'guest-agent may not include vmm'

[ $fails = 0 ] && echo "check-layers-test: all passed"
exit $((fails > 0))
