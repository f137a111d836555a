# runvm — top-level build. Out-of-tree into $(B) (default build/).
#
#   make            build runvm, runvm-agent, initramfs-builder
#   make deps       install the Debian packages the project needs
#   make kernel     guest kernel -> build/kernel/bzImage (cached in $RUNVM_CACHE)
#   make check      layer and format checks, unit tests under ASan+UBSan
#   make format     clang-format every C file
#   make demo       boot the guest under runvm (nested host if no usable /dev/kvm)
#   make test       check, fuzz corpora, then integration tests on real KVM
#                   (nested host without a usable /dev/kvm; RUNVM_NESTED=1
#                   forces it); TEST_IMAGE_LANGS (every language's
#                   default, and go@1.24)
#                   images first; then AARCH64_TESTS on aarch64 (the
#                   nested arm64 host), cross-built into build/aarch64
#   make ARCH=aarch64 [all test-progs kernel]  the aarch64 build
#   make fuzz-long  every fuzz target for FUZZ_SECONDS (600) each, with
#                   its executions and coverage (docs/fuzzing.md)
#   make bench      benchmarks on real KVM (nested host without a
#                   usable /dev/kvm), each beside its peer (QEMU microvm, native):
#                   boot, rss, create rate, exec, console, snippets, exits
#                   per boot phase -> build/bench/results.{json,md};
#                   BENCH_N=5 runs each (docs/bench.md)
#   make snapshots  a snapshot of each built image's booted VM (for --lang)
#   make clean
#
# V=1 shows commands; SANITIZE=address,undefined builds the main binaries
# with sanitizers (unit tests always use them).

# ARCH=aarch64 on an x86-64 machine cross-builds runvm, runvm-agent and
# the test programs, all static, into build/aarch64 (Debian's
# gcc-aarch64-linux-gnu; the libraries from scripts/cross-sysroot.sh).
# (Not an ARCH from the environment: kernel work often exports ARCH=x86.)
HOST_ARCH := $(shell uname -m)
ifneq ($(origin ARCH),command line)
ARCH     := $(HOST_ARCH)
endif
CROSS    := $(filter-out $(HOST_ARCH),$(ARCH))
ifneq ($(CROSS),)
ifneq ($(ARCH)-$(HOST_ARCH),aarch64-x86_64)
$(error ARCH=$(ARCH) on $(HOST_ARCH): runvm cross-builds aarch64 on x86_64 only)
endif
B        ?= build/$(ARCH)
CC       := aarch64-linux-gnu-gcc
SYSROOT  := $(shell scripts/cross-sysroot.sh $(ARCH))
ifeq ($(SYSROOT),)
$(error scripts/cross-sysroot.sh found no arm64 libraries)
endif
CROSS_CFLAGS  := -isystem $(SYSROOT)/usr/include \
                 -isystem $(SYSROOT)/usr/include/aarch64-linux-gnu
CROSS_LDFLAGS := -static -L$(SYSROOT)/usr/lib/aarch64-linux-gnu
# The host's build, where the image builder (a host tool) comes from.
HOST_B   ?= build
BUILDER  := $(HOST_B)/bin/initramfs-builder
$(BUILDER): FORCE
	$(Q)$(MAKE) --no-print-directory ARCH=$(HOST_ARCH) B=$(HOST_B) $@
.PHONY: FORCE
endif
B        ?= build
CC       ?= cc
BUILDER  ?= $(B)/bin/initramfs-builder
V        ?= 0
SANITIZE ?=

.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := all

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla \
        -Wundef -Wcast-qual -Wwrite-strings -Wnull-dereference \
        -Wimplicit-fallthrough
BASE_CFLAGS := -std=gnu11 -g -O2 -D_GNU_SOURCE -I. $(WARN) -MMD -MP \
               -fno-strict-aliasing -fstack-protector-strong $(CROSS_CFLAGS)
CFLAGS   ?=
LDFLAGS  ?=
LDFLAGS  += $(CROSS_LDFLAGS)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
ifneq ($(SANITIZE),)
MAIN_SAN := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
endif

# Modules append to these lists from their module.mk:
#   RUNVM_SRCS    sources of build/bin/runvm
#   RUNVM_LIBS    its link libraries
#   AGENT_SRCS    sources of build/bin/runvm-agent (linked -static)
#   BUILDER_SRCS  sources of build/bin/initramfs-builder
#   BUILDER_LIBS  its link libraries
#   UNIT_TESTS    names N of tests/unit/N.c; each may set N_SRCS (module
#                 sources it links) and N_LIBS. Built sanitized into
#                 $(B)/unit/N and run by `make check`.
#   FUZZ_TARGETS  names N of tests/fuzz/N.c with N_SRCS (clang libFuzzer)
#   TEST_PROGS    names N of tests/*/N.c built as static helpers into
#                 $(B)/tests/N (used inside guests and by integration tests)
RUNVM_SRCS   :=
RUNVM_LIBS   := -lpthread
AGENT_SRCS   :=
BUILDER_SRCS :=
BUILDER_LIBS :=
UNIT_TESTS   :=
FUZZ_TARGETS :=
TEST_PROGS   :=

include $(sort $(wildcard */module.mk */*/module.mk))

# ---- objects ---------------------------------------------------------------
# Three flavours: normal ($(B)/obj), static agent ($(B)/obj-static) and
# sanitized unit-test objects ($(B)/obj-san).
obj      = $(patsubst %.c,$(B)/obj/%.o,$(1))
obj_st   = $(patsubst %.c,$(B)/obj-static/%.o,$(1))
obj_san  = $(patsubst %.c,$(B)/obj-san/%.o,$(1))

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(MAIN_SAN) $(CFLAGS) -c $< -o $@

$(B)/obj-static/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (static)")
	$(Q)$(CC) $(BASE_CFLAGS) -Os $(CFLAGS) -c $< -o $@

$(B)/obj-san/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (san)")
	$(Q)$(CC) $(BASE_CFLAGS) -O1 $(SAN_FLAGS) $(CFLAGS) -c $< -o $@

# ---- programs --------------------------------------------------------------
BINS := $(if $(RUNVM_SRCS),$(B)/bin/runvm) \
        $(if $(AGENT_SRCS),$(B)/bin/runvm-agent) \
        $(if $(BUILDER_SRCS),$(if $(CROSS),,$(B)/bin/initramfs-builder))

$(B)/bin/runvm: $(call obj,$(RUNVM_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(MAIN_SAN) $(LDFLAGS) -o $@ $^ $(RUNVM_LIBS)

$(B)/bin/runvm-agent: $(call obj_st,$(AGENT_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@ (static)")
	$(Q)$(CC) -static $(LDFLAGS) -o $@ $^

$(B)/bin/initramfs-builder: $(call obj,$(BUILDER_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(MAIN_SAN) $(LDFLAGS) -o $@ $^ $(BUILDER_LIBS)

# The builder under ASan+UBSan for initramfs-builder/module.mk's
# check-builder. Here, not there: a rule's prerequisites are expanded when
# it is read, and modules read later (protocol/) still add to BUILDER_SRCS.
$(B)/unit/initramfs-builder-san: $(call obj_san,$(BUILDER_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@ (san)")
	$(Q)$(CC) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(BUILDER_LIBS)

define test_prog
$(B)/tests/$(1): $$(call obj_st,$$(or $$($(1)_SRCS),$$(wildcard tests/*/$(1).c)))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD      $$@ (static)")
	$$(Q)$$(CC) -static $$(LDFLAGS) -o $$@ $$^
endef
$(foreach t,$(TEST_PROGS),$(eval $(call test_prog,$(t))))

define unit_test
$(B)/unit/$(1): $$(call obj_san,tests/unit/$(1).c $$($(1)_SRCS))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD      $$@ (san)")
	$$(Q)$$(CC) $$(SAN_FLAGS) $$(LDFLAGS) -o $$@ $$^ $$($(1)_LDFLAGS) \
		-lcmocka $$($(1)_LIBS)
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test,$(t))))

FUZZ_CC ?= clang
define fuzz_target
$(B)/fuzz/$(1): tests/fuzz/$(1).c $$($(1)_SRCS)
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  FUZZ    $$@")
	$$(Q)$$(FUZZ_CC) -std=gnu11 -g -O1 -D_GNU_SOURCE -I. \
		-fsanitize=fuzzer,address,undefined -o $$@ $$^ $$($(1)_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target,$(t))))

# ---- top-level targets -----------------------------------------------------
.PHONY: all deps kernel check test integration unit-bins test-progs fuzz clients \
        fuzz-regress fuzz-long clean kvmhost demo

all: $(BINS)

deps:
	$(Q)scripts/deps.sh

KERNEL_FILE := $(if $(filter aarch64,$(ARCH)),Image,bzImage)
kernel: $(B)/kernel/$(KERNEL_FILE)
# The script is cheap when its cache hit, so always ask it.
.PHONY: $(B)/kernel/$(KERNEL_FILE)
$(B)/kernel/$(KERNEL_FILE):
	$(Q)ARCH=$(ARCH) scripts/build-kernel.sh $@

kvmhost:
	$(Q)tests/kvmhost/kvmhost --prepare

unit-bins: $(addprefix $(B)/unit/,$(UNIT_TESTS))
test-progs: $(addprefix $(B)/tests/,$(TEST_PROGS))

# Unit tests: every binary runs even when one fails; the summary line counts
# binaries.
check: unit-bins check-layers check-format
	$(Q)scripts/run-unit-tests.sh $(B)/unit $(UNIT_TESTS)

# Every C file as clang-format (.clang-format) writes it; `make format`
# rewrites them.
.PHONY: check-format format
check-format:
	$(Q)scripts/check-format
format:
	$(Q)git ls-files '*.c' '*.h' | xargs clang-format -i

# Includes point down the layers only (scripts/check-layers has the order),
# and the check itself catches what it is for (tests/layers/).
.PHONY: check-layers
check-layers:
	$(Q)scripts/check-layers
	$(Q)tests/layers/check-layers-test.sh >/dev/null

fuzz: $(addprefix $(B)/fuzz/,$(FUZZ_TARGETS))

# Replays every checked-in corpus through its fuzz target (no new fuzzing).
fuzz-regress: fuzz
	$(Q)set -e; for t in $(FUZZ_TARGETS); do \
	    [ -d tests/fuzz/corpus/$$t ] || continue; \
	    $(B)/fuzz/$$t -runs=0 tests/fuzz/corpus/$$t >/dev/null 2>&1 || \
	        { echo "fuzz-regress: $$t failed on its corpus" >&2; exit 1; }; \
	    echo "fuzz-regress: $$t ok"; done

# Every fuzz target in turn for FUZZ_SECONDS each (libFuzzer
# -max_total_time), from its checked-in corpus into $(B)/fuzz/long/; prints
# each one's executions, coverage and crashes from libFuzzer's final stats
# (tests/fuzz/fuzz-long.sh, docs/fuzzing.md). FUZZ_LONG_TARGETS picks some.
FUZZ_SECONDS ?= 600
FUZZ_LONG_TARGETS ?= $(FUZZ_TARGETS)
fuzz-long: fuzz
	$(Q)tests/fuzz/fuzz-long.sh $(B) $(FUZZ_SECONDS) $(FUZZ_LONG_TARGETS)

# Language images the integration tests boot (rootfs cached by inputs in
# $RUNVM_CACHE, so only the first run on a machine pays for mmdebstrap):
# every language's default (42-multi-file runs a program of several files
# in each), and go@1.24 to prove a second version works.
TEST_IMAGE_LANGS ?= go go@1.24 rust c python javascript java
.PHONY: test-images
test-images: all
	$(Q)$(MAKE) --no-print-directory images IMAGE_LANGS="$(TEST_IMAGE_LANGS)"

integration: all test-progs kernel test-images clients
	$(Q)tests/integration/run B=$(B) ARCH=$(ARCH)

# The npm client libraries tests drive runvm serve with (tests/clients/).
clients:
	$(Q)scripts/clients.sh $(B)

# The tests that run on aarch64 too (#18), on an arm64 KVM: the nested
# aarch64 host from an x86-64 machine. runvm, the agent and the test
# programs cross-built into $(B)/aarch64, the arm64 guest kernel from the
# same linux-source-6.1 and the arm64 Go image (both cached like the x86
# ones).
# 20-virtio-console moves 16 MiB each way there (64 on x86): 0.4 MB/s out
# of the nested arm64 guest.
AARCH64_TESTS ?= 01-kvm-smoke 10-boot 13-bad-input 20-virtio-console \
                 30-exec 31-lang
.PHONY: integration-aarch64
integration-aarch64:
ifeq ($(HOST_ARCH),x86_64)
	$(Q)$(MAKE) --no-print-directory ARCH=aarch64 B=$(B)/aarch64 HOST_B=$(B) \
	    all test-progs kernel
	$(Q)$(MAKE) --no-print-directory ARCH=aarch64 B=$(B)/aarch64 HOST_B=$(B) \
	    images IMAGE_LANGS=go
	$(Q)HVC_BYTES=$${HVC_BYTES:-16777216} \
	    tests/integration/run B=$(B)/aarch64 ARCH=aarch64 $(AARCH64_TESTS)
else
	@echo "integration-aarch64: this machine is $(HOST_ARCH): make integration runs them"
endif

# One nested host at a time: the aarch64 tests after the others.
test: check fuzz-regress integration
	$(Q)$(MAKE) --no-print-directory integration-aarch64

# Boots the guest kernel under runvm (nested host where /dev/kvm is not usable)
# to the test init, showing the kernel log and the boot timer's phases.
DEMO_INITRD := $(B)/demo/initrd.cpio.gz
$(DEMO_INITRD): $(B)/tests/testinit
	@rm -rf $(B)/demo/root && mkdir -p $(B)/demo/root
	$(Q)cp $< $(B)/demo/root/init
	$(Q)scripts/mkcpio.sh $(B)/demo/root $@
demo: all kernel $(DEMO_INITRD)
	$(Q)scripts/with-kvm --arch $(ARCH) $(B)/bin/runvm --kernel $(B)/kernel/$(KERNEL_FILE) \
	    --initrd $(DEMO_INITRD) --console --boot-timer --cpus 2 --mem 256 \
	    --cmdline "reboot=k panic=-1"

# Benchmarks: figures side by side with QEMU microvm in one KVM environment
# (tests/bench/run); fails only when a run fails, never on a speed.
.PHONY: bench
bench: all test-progs kernel $(B)/bench-bin/httpd-peer $(B)/bench-bin/seccomp-cost
	$(Q)tests/bench/run B=$(B) N=$(or $(BENCH_N),5)

$(B)/bench-bin/httpd-peer: $(call obj,$(HTTPD_PEER_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lmicrohttpd

$(B)/bench-bin/seccomp-cost: $(call obj,$(SECCOMP_COST_SRCS))
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lseccomp

# A snapshot of every built image's VM at its agent's HELLO, in the store
# runvm --lang restores from ($$RUNVM_SNAPSHOTS, else
# $$RUNVM_CACHE/snapshots, else ~/.cache/runvm/snapshots). Through the
# nested host where /dev/kvm cannot boot a guest: there, point
# RUNVM_SNAPSHOTS at a directory that outlives the host (its $$HOME is a
# fresh tmpfs each time).
.PHONY: snapshots
snapshots: all kernel
	$(Q)set -e; for f in $(B)/images/*.cpio*; do \
	    [ -e "$$f" ] || { echo "snapshots: no images (make images)"; exit 1; }; \
	    l=$${f##*/}; l=$${l%%.cpio*}; \
	    scripts/with-kvm --arch $(ARCH) $(B)/bin/runvm snapshot --lang $$l; done

clean:
	rm -rf $(B)

-include $(shell find $(B) -path $(B)/aarch64 -prune -o -name '*.d' -print 2>/dev/null)
