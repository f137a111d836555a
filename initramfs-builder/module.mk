# initramfs-builder/: OCI image / rootfs -> per-language initramfs (cpio).
BUILDER_CORE_SRCS := initramfs-builder/tree.c initramfs-builder/layer.c \
                     initramfs-builder/cpio.c initramfs-builder/progress.c \
                     initramfs-builder/digest.c initramfs-builder/limits.c \
                     initramfs-builder/image.c initramfs-builder/registry.c
BUILDER_SRCS += $(BUILDER_CORE_SRCS) initramfs-builder/main.c
BUILDER_LIBS += -larchive -lcurl -ljansson -lz -lcrypto

# ---- language images ------------------------------------------------------
# One config per language version, initramfs-builder/langs/LANG/VERSION.conf
# (docs/lang-conf.md). `make images` builds $(B)/images/LANG@VERSION.cpio.lz4
# for each of IMAGE_LANGS via mmdebstrap (rootfs cached in
# ${RUNVM_CACHE:-~/.cache/runvm}/images): LANG is the language's default
# version, LANG@VERSION another (IMAGE_LANGS="go@1.24 python@3.13"). The
# compression is IMAGE_COMPRESS=gz|lz4|none. lz4 is the default by
# measurement: the kernel unpacked the Go image 3-4x faster than from gzip,
# for a file ~17% larger (initramfs-builder/bench-unpack.sh). mmdebstrap
# runs are heavy: one at a time.
IMAGE_LANGS ?= go rust c python javascript java
IMAGE_COMPRESS ?= lz4
IMAGE_SUFFIX := .cpio$(if $(filter none,$(IMAGE_COMPRESS)),,.$(IMAGE_COMPRESS))
IMAGE_AGENT ?= $(B)/bin/runvm-agent

.PHONY: images
images: $(BUILDER) $(IMAGE_AGENT) lang-confs
	$(Q)$(if $(CROSS),scripts/binfmt-arm64.sh)
	$(Q)set -e; for l in $(IMAGE_LANGS); do \
	    ARCH=$(ARCH) initramfs-builder/mkimage.sh $$l $(B)/images \
	        $(IMAGE_SUFFIX) $(BUILDER) $(IMAGE_AGENT); done

# Every version's config, INCLUDEs resolved, installed as
# $(B)/images/LANG@VERSION.conf whether or not its image is built: runvm
# lists and picks versions from them (session/catalog.c).
LANG_CONFS := $(sort $(wildcard initramfs-builder/langs/*/*.conf))
LANG_VERSIONS := $(filter-out %/lang.conf,$(LANG_CONFS))
$(B)/images/.confs: $(LANG_CONFS) $(BUILDER)
	$(Q)mkdir -p $(@D)
	$(Q)set -e; for f in $(LANG_VERSIONS); do \
	    v=$${f##*/}; v=$${v%.conf}; l=$${f%/*}; l=$${l##*/}; \
	    $(BUILDER) --lang $$l@$$v --print-conf \
	        >$(@D)/$$l@$$v.conf.tmp; chmod 644 $(@D)/$$l@$$v.conf.tmp; \
	    mv $(@D)/$$l@$$v.conf.tmp $(@D)/$$l@$$v.conf; done
	$(Q)touch $@
.PHONY: lang-confs
lang-confs: $(B)/images/.confs
ifeq ($(CROSS),)
all: lang-confs
endif

UNIT_TESTS += test_paths test_whiteout test_registry_ref
test_paths_SRCS := initramfs-builder/tree.c
test_whiteout_SRCS := initramfs-builder/tree.c initramfs-builder/layer.c \
                      initramfs-builder/cpio.c initramfs-builder/progress.c \
                      initramfs-builder/limits.c
test_whiteout_LIBS := -larchive -lz
test_registry_ref_SRCS := initramfs-builder/registry.c \
                          initramfs-builder/digest.c \
                          initramfs-builder/progress.c \
                          initramfs-builder/image.c \
                          initramfs-builder/layer.c initramfs-builder/tree.c \
                          initramfs-builder/limits.c
test_registry_ref_LIBS := -lcurl -ljansson -larchive -lcrypto
# Caps and refusals against a hostile image, through a registry the test
# serves itself on loopback.
UNIT_TESTS += test_hostile_image
test_hostile_image_SRCS := $(test_registry_ref_SRCS)
test_hostile_image_LIBS := $(test_registry_ref_LIBS) -lpthread

# ---- registry round trip (no KVM needed), part of `make check` -------------
# Runs tests/builder/registry-test.sh against a sanitized builder
# ($(B)/unit/initramfs-builder-san, linked in the top Makefile once every
# module has added to BUILDER_SRCS) so the pull, manifest and layer paths
# run under ASan+UBSan too.
.PHONY: check-builder
check-builder: $(B)/unit/initramfs-builder-san
	$(Q)tests/builder/registry-test.sh $< || [ $$? -eq 77 ]
check: check-builder

FUZZ_TARGETS += fuzz_tree
fuzz_tree_SRCS := initramfs-builder/tree.c initramfs-builder/cpio.c \
                  initramfs-builder/progress.c
fuzz_tree_LIBS := -lz
fuzz_tree_SRCS += tests/fuzz/tree_check.c
# Tar layers, plain or compressed, through libarchive into a tree
# (layer.c), checked, read back and written as a cpio.
FUZZ_TARGETS += fuzz_layer
fuzz_layer_SRCS := initramfs-builder/layer.c initramfs-builder/tree.c \
                   initramfs-builder/cpio.c initramfs-builder/progress.c \
                   initramfs-builder/limits.c tests/fuzz/tree_check.c
fuzz_layer_LIBS := -larchive -lz
