# arch/: the platform behind arch/arch.h. x86_64/ holds the RAM layout,
# the bzImage loader, boot_params/e820, MP tables, vCPU set-up and the
# in-kernel irqchip and PIT; arch/cmdline.c builds kernel command lines.
# ARCH (the top Makefile's) picks which one runvm is built with.
ARCH_SRCS := arch/cmdline.c arch/file.c
ifeq ($(ARCH),aarch64)
ARCH_SRCS += arch/aarch64/arch.c arch/aarch64/platform.c \
             arch/aarch64/image.c arch/aarch64/fdt.c
RUNVM_LIBS += -lfdt
else
ARCH_SRCS += arch/x86_64/arch.c arch/x86_64/ram.c \
             arch/x86_64/platform.c \
             arch/x86_64/bzimage.c \
             arch/x86_64/bootparams.c arch/x86_64/mptable.c \
             arch/x86_64/cpu.c arch/x86_64/state.c
endif
RUNVM_SRCS += $(ARCH_SRCS)

UNIT_TESTS += test_bzimage test_bootparams test_mptable test_cmdline \
              test_cpu
test_bzimage_SRCS := arch/x86_64/bzimage.c
test_bootparams_SRCS := arch/x86_64/bootparams.c arch/x86_64/bzimage.c \
                        arch/x86_64/ram.c \
                        core/guest_mem.c
test_mptable_SRCS := arch/x86_64/mptable.c
test_cmdline_SRCS := arch/cmdline.c
test_cpu_SRCS := arch/x86_64/cpu.c core/guest_mem.c

FUZZ_TARGETS += fuzz_bzimage
fuzz_bzimage_SRCS := arch/x86_64/bzimage.c

# arch/aarch64/'s plain code (the Image header, the device tree) is
# tested on any host.
UNIT_TESTS += test_arm64_boot
test_arm64_boot_SRCS := arch/aarch64/image.c arch/aarch64/fdt.c
test_arm64_boot_LIBS := -lfdt
FUZZ_TARGETS += fuzz_arm64_image
fuzz_arm64_image_SRCS := arch/aarch64/image.c
