#!/bin/sh
# initramfs-builder against a real registry (Debian's docker-registry, the
# CNCF distribution server) on loopback. Builds a two-layer OCI image with a
# whiteout, an opaque directory, a hard link, a symlink, owner bits and
# setuid-root, setgid and sticky entries; pushes it with skopeo; pulls it through docker:// (by tag, by
# digest, through a multi-platform index) and compares the initramfs tree
# entry by entry with the expected one: the same but for setuid and setgid,
# which no entry keeps (issue #17: a snippet could become root through a
# setuid-root su). Also: oci: and docker-archive:
# sources give byte-identical archives, and the error paths (missing tag,
# platform not in the index, corrupt blob, each cap on blob size, unpacked
# size and entries, by flag and by environment; a layer compressed with a
# program-only filter) fail with a clear message.
#
# usage: tests/builder/registry-test.sh [BUILDER]   (needs no KVM)
set -eu
builder=$(realpath "${1:-build/bin/initramfs-builder}")
for tool in docker-registry skopeo cpio curl python3 sha256sum; do
    command -v $tool >/dev/null || {
        echo "registry-test: SKIP: $tool missing (make deps)"; exit 77; }
done

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/registry-test.XXXXXX")
reg_pid= auth_pid=
cleanup() {
    for p in $reg_pid $auth_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cd "$tmp"
export RUNVM_CACHE=$tmp/cache
fails=0
ok() { echo "registry-test: ok: $*"; }
bad() { echo "registry-test: FAIL: $*"; fails=$((fails + 1)); }

# ---- registry ---------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >registry.yml <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $tmp/storage
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve registry.yml >registry.log 2>&1 &
reg_pid=$!
i=0
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { cat registry.log; echo "registry-test: FAIL: registry did not start"; exit 1; }
    sleep 0.1
done
ok "docker-registry on 127.0.0.1:$port"

# ---- the image --------------------------------------------------------------
mkdir -p l1/etc l1/d/sub l1/keep l1/bin l1/tmp l2/d l2/keep l2/etc
echo one >l1/etc/os-release
echo a >l1/d/a; echo b >l1/d/b; echo c >l1/d/sub/c
echo x >l1/keep/x; echo gone >l1/gone
printf '#!/bin/sh\necho tool\n' >l1/bin/tool; chmod 755 l1/bin/tool
ln l1/bin/tool l1/bin/tool2
ln -s bin/tool l1/link
echo suid >l1/bin/suid; chmod 4755 l1/bin/suid
echo sgid >l1/bin/sgid; chmod 2755 l1/bin/sgid
chmod 1777 l1/tmp
chmod 0700 l1/keep
if [ "$(id -u)" = 0 ]; then chown 1234:5678 l1/keep/x; fi
: >l2/.wh.gone
: >l2/d/.wh..wh..opq
echo new >l2/d/new
echo y >l2/keep/y; chmod 0700 l2/keep
echo two >l2/etc/os-release

# Owned by root as in a real image, by a user too: bin/suid is
# setuid-root.
owner_map=
if [ "$(id -u)" != 0 ]; then
    echo "+$(id -u) root:0" >owner.map; echo "+$(id -g) root:0" >group.map
    owner_map="--owner-map=$tmp/owner.map --group-map=$tmp/group.map"
fi
tarit() { # DIR OUT: a reproducible layer tar
    # shellcheck disable=SC2086 # $owner_map: none or two options
    tar --sort=name --mtime=@0 --numeric-owner --format=pax $owner_map \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$1" -cf "$2" .
}
tarit l1 layer1.tar
tarit l2 layer2.tar
gzip -n -k layer2.tar

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }
mkdir -p oci/blobs/sha256
blob() { # FILE: copy into the layout, print the digest
    d=$(sha "$1"); cp "$1" "oci/blobs/sha256/$d"; echo "$d"; }
l1d=$(blob layer1.tar); l2d=$(blob layer2.tar.gz)
mkconfig() { # ARCH
    printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"config":{"Env":["PATH=/bin"]}}' \
        "$1" "$(sha layer1.tar)" "$(sha layer2.tar)"
}
mkmanifest() { # CONFIG-FILE
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
        "$(sha "$1")" "$(size "$1")" "$l1d" "$(size layer1.tar)" "$l2d" "$(size layer2.tar.gz)"
}
mkconfig amd64 >config-amd64.json; mkconfig arm64 >config-arm64.json
blob config-amd64.json >/dev/null; blob config-arm64.json >/dev/null
mkmanifest config-amd64.json >m-amd64.json; mkmanifest config-arm64.json >m-arm64.json
ma=$(blob m-amd64.json); mb=$(blob m-arm64.json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}}]}' \
    "$mb" "$(size m-arm64.json)" "$ma" "$(size m-amd64.json)" >index-multi.json
mi=$(blob index-multi.json)
echo '{"imageLayoutVersion":"1.0.0"}' >oci/oci-layout
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}},{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}' \
    "$ma" "$(size m-amd64.json)" "$mi" "$(size index-multi.json)" >oci/index.json

# skopeo compresses the plain layer on the way, so the pushed manifest has
# its own digest: --digestfile tells it.
skopeo --insecure-policy copy -q --dest-tls-verify=false --digestfile pushed.digest \
    oci:oci:v1 "docker://127.0.0.1:$port/test/img:v1"
skopeo --insecure-policy copy -q --all --dest-tls-verify=false \
    oci:oci:multi "docker://127.0.0.1:$port/test/img:multi"
ok "pushed test/img:v1 and test/img:multi (2 platforms) with skopeo"

# ---- builds -----------------------------------------------------------------
mkdir -p langs/test
printf 'LANG=test\nDEFAULT=1\nSOURCE=main.t\nRUN=./main\nENV=A=b\nIMAGE=unused\nDROP=/etc/os-release-nothing\n' >langs/test/lang.conf
printf 'INCLUDE=lang.conf\nVERSION=1\n' >langs/test/1.conf
printf 'agent' >agent
build() { # SOURCE OUT [ARGS...]
    src=$1 out=$2; shift 2
    "$builder" --lang test --lang-dir langs --agent agent --from "$src" \
        -o "$out" "$@"
}

if build "docker://127.0.0.1:$port/test/img:v1" pulled.cpio 2>pull.log; then
    ok "pull by tag"
else
    cat pull.log; bad "pull by tag"
fi
grep -q 'digest ok' pull.log && ok "blob digests verified" || bad "no digest verification in the log"

# Expected tree: layer 1, then layer 2's changes by hand, plus what the
# builder adds.
cp -a l1 exp
rm -f exp/gone exp/d/a exp/d/b
rm -rf exp/d/sub
cp -a l2/. exp/
rm -f exp/.wh.gone exp/d/.wh..wh..opq
mkdir -p exp/etc/runvm
printf 'LANG=test\nSOURCE=main.t\nRUN=./main\nENV=A=b\n' >exp/etc/runvm/lang.conf
cp agent exp/init
chmod 755 exp/init; chmod 644 exp/etc/runvm/lang.conf
if [ "$(id -u)" = 0 ]; then chown -R 0:0 exp; chown 1234:5678 exp/keep/x; fi
chmod 0755 exp/bin/suid exp/bin/sgid # the builder cleared setuid and setgid

listing() { # DIR: one line per entry: path type mode uid gid links size target sha
    (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U %G %n %s %l\n' | LC_ALL=C sort &&
        find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2)
}
mkdir got
(cd got && cpio -idm --quiet --no-absolute-filenames <../pulled.cpio)
if [ "$(id -u)" != 0 ]; then
    # cpio -i cannot set owners as a user: compare without them.
    listing() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m %n %s %l\n' | LC_ALL=C sort &&
        find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2); }
fi
listing exp >exp.lst
listing got >got.lst
if diff -u exp.lst got.lst; then
    ok "pulled tree matches entry by entry ($(wc -l <exp.lst) lines: whiteout, opaque dir, hard link, symlink, modes, owners)"
else
    bad "pulled tree differs from the expected one"
fi
# The archive itself: sorted names, parents first, the hard link shared.
cpio -t --quiet <pulled.cpio >names.lst
LC_ALL=C sort names.lst | cmp -s - names.lst && ok "cpio -t: names sorted" || bad "cpio names not sorted"
# No setuid or setgid entry; owners and the sticky bit as the layer has them
# (cpio -tv reads the headers, which extracting as a user cannot show).
cpio -tv --quiet --numeric-uid-gid <pulled.cpio |
    awk '{ print $NF, $1, $3, $4 }' >modes.lst
grep -E '^(bin/s[ug]id|tmp) ' modes.lst >modes.got || true
printf '%s\n' 'bin/sgid -rwxr-xr-x 0 0' 'bin/suid -rwxr-xr-x 0 0' \
    'tmp drwxrwxrwt 0 0' >modes.exp
diff -u modes.exp modes.got &&
    ok "cpio -tv: setuid-root bin/suid and setgid bin/sgid are 0755, tmp keeps 1777" ||
    bad "cpio -tv: set-id or sticky bits not as expected"
setid=$(awk 'substr($2, 4, 1) ~ /[sS]/ || substr($2, 7, 1) ~ /[sS]/' modes.lst)
[ -z "$setid" ] && ok "cpio -tv: no entry setuid or setgid" ||
    bad "cpio -tv: setuid or setgid entries: $(echo "$setid" | tr "\n" ";")"
grep -q 'setuid/setgid cleared on 2 entries' pull.log &&
    ok "summary: setuid/setgid cleared on 2 entries" ||
    { grep 'unpack:' pull.log; bad "summary lacks the set-id count"; }
[ "$(stat -c %i got/bin/tool)" = "$(stat -c %i got/bin/tool2)" ] &&
    ok "hard link preserved" || bad "hard link lost"

build "docker://127.0.0.1:$port/test/img:v1" pulled2.cpio 2>pull2.log &&
    cmp -s pulled.cpio pulled2.cpio && grep -q cached pull2.log &&
    ok "second pull (blob cache) byte-identical" || bad "second pull differs"
build "oci:oci:v1" oci.cpio 2>/dev/null && cmp -s pulled.cpio oci.cpio &&
    ok "oci: layout source byte-identical to the pull" || bad "oci: source differs"
build "docker://127.0.0.1:$port/test/img@$(cat pushed.digest)" bydigest.cpio 2>digest.log &&
    cmp -s pulled.cpio bydigest.cpio && ok "pull by digest" || { cat digest.log; bad "pull by digest"; }
build "docker://127.0.0.1:$port/test/img:multi" multi.cpio --platform linux/amd64 2>multi.log &&
    cmp -s pulled.cpio multi.cpio && grep -q 'platform linux/amd64' multi.log &&
    ok "index resolved to linux/amd64" || { cat multi.log; bad "multi-platform pull"; }
build "docker://127.0.0.1:$port/test/img:v1" pulled.cpio.gz 2>/dev/null &&
    gzip -dc pulled.cpio.gz | cmp -s - pulled.cpio && ok "gzip output" || bad "gzip output"
if command -v lz4 >/dev/null; then
    build "docker://127.0.0.1:$port/test/img:v1" pulled.cpio.lz4 2>/dev/null &&
        [ "$(od -An -tx1 -N4 pulled.cpio.lz4 | tr -d ' ')" = 02214c18 ] &&
        lz4 -dc pulled.cpio.lz4 | cmp -s - pulled.cpio &&
        ok "lz4 output (legacy frame)" || bad "lz4 output"
fi

# docker save layout: manifest.json + config + layer tars.
mkdir da
cp layer1.tar da/l1.tar; cp layer2.tar da/l2.tar; cp config-amd64.json da/config.json
echo '[{"Config":"config.json","RepoTags":["test/img:v1"],"Layers":["l1.tar","l2.tar"]}]' >da/manifest.json
tar -C da -cf docker-archive.tar manifest.json config.json l1.tar l2.tar
build "docker-archive:docker-archive.tar" da.cpio 2>/dev/null && cmp -s pulled.cpio da.cpio &&
    ok "docker-archive: source byte-identical" || bad "docker-archive: source"

expect_fail() { # WHAT PATTERN SOURCE [ARGS...]
    what=$1 pat=$2 src=$3; shift 3
    if build "$src" err.cpio "$@" 2>err.log; then
        bad "$what: succeeded"
    elif grep -q -e "$pat" err.log; then
        ok "$what: $(grep error: err.log | head -n 1 | cut -c1-120)"
    else
        cat err.log; bad "$what: message lacks '$pat'"
    fi
}

# ---- language versions ---------------------------------------------------------
# The toolchain an image holds (TOOLCHAIN, from VERSION_CMD) must be its
# config's VERSION, matched on dot boundaries.
expect_fail "toolchain of another version" 'installed is "test 2.0.1", not version 1' \
    docker-archive:docker-archive.tar --set "TOOLCHAIN=test 2.0.1"
expect_fail "toolchain 10.1 is not version 1" 'not version 1' \
    docker-archive:docker-archive.tar --set "TOOLCHAIN=test 10.1"
build docker-archive:docker-archive.tar tc.cpio --set "TOOLCHAIN=test 1.4.2" 2>tc.log &&
    ok "toolchain 1.4.2 is version 1" || { cat tc.log; bad "toolchain 1.4.2 refused"; }
rm -f tc.cpio
"$builder" --lang test@1 --lang-dir langs --print-conf >printed.conf &&
    [ "$(cat printed.conf)" = "$(printf 'LANG=test\nDEFAULT=1\nSOURCE=main.t\nRUN=./main\nENV=A=b\nIMAGE=unused\nDROP=/etc/os-release-nothing\nVERSION=1')" ] &&
    ok "--print-conf: the whole config, INCLUDE resolved" || { cat printed.conf; bad "--print-conf"; }
if "$builder" --lang test@2 --lang-dir langs --print-conf >/dev/null 2>v.log; then
    bad "unknown version accepted"
else
    grep -q 'test has no version 2' v.log && ok "unknown version: $(cut -c1-100 v.log)" ||
        { cat v.log; bad "unknown version: message"; }
fi
printf 'INCLUDE=lang.conf\nVERSION=3\n' >langs/test/4.conf
if "$builder" --lang test@4 --lang-dir langs --print-conf >/dev/null 2>v.log; then
    bad "a config named for another version accepted"
else
    grep -q 'must say LANG=test and VERSION=4' v.log && ok "a config must name its own version" ||
        { cat v.log; bad "misnamed config: message"; }
fi

# ---- authentication -----------------------------------------------------------
# A proxy in front of the registry demands credentials like Docker Hub
# (bearer tokens) or an htpasswd registry (Basic).
start_auth() { # MODE [USER PASS]
    [ -z "$auth_pid" ] || { kill "$auth_pid"; wait "$auth_pid" 2>/dev/null || true; }
    rm -f auth.port
    export RUNVM_CACHE="$tmp/cache-$1" # blobs come through the proxy too
    python3 "$here/fake-auth-registry.py" "$port" "$@" >auth.port &
    auth_pid=$!
    i=0
    while [ ! -s auth.port ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { bad "auth proxy did not start"; return 1; }
        sleep 0.1
    done
    aport=$(cat auth.port)
}
authfile() { # USER PASS
    printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$aport" \
        "$(printf '%s:%s' "$1" "$2" | base64)" >auth.json
}
start_auth bearer
build "docker://127.0.0.1:$aport/test/img:v1" anon.cpio 2>anon.log &&
    cmp -s pulled.cpio anon.cpio && ok "anonymous bearer token" ||
    { cat anon.log; bad "anonymous bearer token"; }
start_auth bearer-user alice s3cret
authfile alice s3cret
build "docker://127.0.0.1:$aport/test/img:v1" tok.cpio --auth-file auth.json 2>tok.log &&
    cmp -s pulled.cpio tok.cpio && ok "bearer token with basic credentials" ||
    { cat tok.log; bad "bearer token with credentials"; }
authfile alice wrong
expect_fail "wrong password (token)" "authentication failed" \
    "docker://127.0.0.1:$aport/test/img:v1" --auth-file auth.json
start_auth basic alice s3cret
echo "{}" >none.json
authfile alice s3cret
build "docker://127.0.0.1:$aport/test/img:v1" basic.cpio --auth-file auth.json 2>basic.log &&
    cmp -s pulled.cpio basic.cpio && ok "basic auth" ||
    { cat basic.log; bad "basic auth"; }
expect_fail "basic auth without credentials" "wants a password" \
    "docker://127.0.0.1:$aport/test/img:v1" --auth-file none.json
authfile alice wrong
expect_fail "wrong password (basic)" "access denied" \
    "docker://127.0.0.1:$aport/test/img:v1" --auth-file auth.json

# ---- errors -----------------------------------------------------------------
expect_fail "missing tag" "not found" "docker://127.0.0.1:$port/test/img:nope"
expect_fail "missing repository" "not found" "docker://127.0.0.1:$port/no/such:v1"
expect_fail "platform not in index" "not in the image index" \
    "docker://127.0.0.1:$port/test/img:multi" --platform linux/s390x
cp -a oci bad
printf 'tampered' | dd of="bad/blobs/sha256/$l1d" bs=1 seek=600 conv=notrunc 2>/dev/null
expect_fail "corrupt blob" "digest mismatch" "oci:bad:v1"
printf 'tampered' >>"bad/blobs/sha256/$l1d"
expect_fail "blob longer than declared" "bytes, its descriptor declares $(size layer1.tar)" "oci:bad:v1"
expect_fail "unreachable registry" "127.0.0.1:1" "docker://127.0.0.1:1/x/y:z"
# ---- decompressor programs -------------------------------------------------------
# A layer that says lrzip (libarchive's lrzip is always "lrzip -d -q") is
# refused, as a rootfs tar and inside a docker archive, and no lrzip runs:
# a fake one first on PATH would leave a mark.
mkdir -p fakebin
printf '#!/bin/sh\necho "$0" >>%s/ran\ncat >/dev/null\n' "$tmp" >fakebin/lrzip
chmod 755 fakebin/lrzip
{ printf 'LRZI\000\006'; head -c 600 /dev/zero; } >layer.lrz
mkdir dalrz
cp layer1.tar dalrz/l1.tar; cp layer.lrz dalrz/l2.tar; cp config-amd64.json dalrz/config.json
echo '[{"Config":"config.json","Layers":["l1.tar","l2.tar"]}]' >dalrz/manifest.json
tar -C dalrz -cf lrz-archive.tar manifest.json config.json l1.tar l2.tar
PATH="$tmp/fakebin:$PATH" expect_fail "lrzip layer (rootfs)" "compressed with lrzip, whose decompressor is an external program: refused" \
    "rootfs:$tmp/layer.lrz"
PATH="$tmp/fakebin:$PATH" expect_fail "lrzip layer (docker archive)" "l2.tar: Unrecognized archive format" \
    "docker-archive:lrz-archive.tar"
[ ! -e ran ] && ok "no decompressor program ran" || bad "a decompressor program ran: $(cat ran)"

# ---- caps ---------------------------------------------------------------------
# Each cap, set by its flag or its variable, fails the build naming it.
expect_fail "blob cap (declared size)" "over the cap of 100 bytes per blob (raise it with --max-blob-size" \
    "docker://127.0.0.1:$port/test/img:v1" --max-blob-size 100
expect_fail "blob cap (layout)" "over the cap of 1 KiB per blob" "oci:oci:v1" --max-blob-size 1K
expect_fail "blob cap (docker archive)" "layer l1.tar: 20 KiB, over the cap of 1 KiB per blob" \
    "docker-archive:docker-archive.tar" --max-blob-size 1K
expect_fail "unpacked size cap" "more than 10 bytes of file contents, the cap (raise it with --max-unpacked-size" \
    "oci:oci:v1" --max-unpacked-size 10
expect_fail "entry cap" "more than 5 entries, the cap (raise it with --max-entries" \
    "docker-archive:docker-archive.tar" --max-entries 5
export RUNVM_BUILDER_MAX_ENTRIES=6
expect_fail "entry cap from the environment" "more than 6 entries" "oci:oci:v1"
build oci:oci:v1 caps.cpio --max-entries 100 2>caps.log && cmp -s pulled.cpio caps.cpio &&
    ok "the flag overrides the environment" || { cat caps.log; bad "--max-entries over the environment"; }
export RUNVM_BUILDER_MAX_ENTRIES=many
expect_fail "a bad cap in the environment" "RUNVM_BUILDER_MAX_ENTRIES=many: expected a positive number" "oci:oci:v1"
unset RUNVM_BUILDER_MAX_ENTRIES
expect_fail "a bad cap flag" "--max-blob-size 4X: expected a size" "oci:oci:v1" --max-blob-size 4X
rm -f caps.cpio

# Disk full: a 64 KiB tmpfs in a private mount namespace (root only).
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    mkdir small
    head -c 1048576 /dev/urandom >big-agent
    if unshare --mount sh -c 'mount -t tmpfs -o size=64k none small &&
        exec "$@"' sh "$builder" --lang test --lang-dir langs --agent big-agent \
        --from oci:oci:v1 -o small/out.cpio 2>full.log; then
        bad "disk full: succeeded"
    elif grep -q 'No space left on device — free some space' full.log; then
        ok "disk full: $(grep error: full.log | cut -c1-100)"
    elif grep -q 'mount' full.log; then
        echo "registry-test: skip: disk full (cannot mount a tmpfs here)"
    else
        cat full.log; bad "disk full: unclear message"
    fi
fi
[ ! -e err.cpio ] && [ ! -e err.cpio.tmp ] && ok "no output left behind on errors" ||
    bad "partial output left behind"

if [ $fails -ne 0 ]; then
    echo "registry-test: $fails failed"
    exit 1
fi
echo "registry-test: all passed"
