# cli/: runvm's command line: main(), option parsing, and where a one-shot
# or --exec run's events go (cli/agent_exec.c: stdout and stderr, or NDJSON).
RUNVM_SRCS += cli/options.c cli/cli.c cli/agent_exec.c cli/snapstore.c \
               cli/main.c

# The parser against every flag and bad value; arch_max_cpus and
# arch_min_mem come from the arch.
UNIT_TESTS += test_options
test_options_SRCS = cli/options.c $(ARCH_SRCS) core/guest_mem.c core/state.c \
                    session/catalog.c session/event.c $(LANGCONF_SRCS) \
                    $(PROTOCOL_SRCS)
test_options_LIBS := -lz

# `make hello`: the product's first command on a fresh machine. Builds
# runvm, the kernel and the Go image, then runs examples/hello.go in a VM
# (inside the nested KVM host where /dev/kvm is missing).
.PHONY: hello
hello: all kernel
	$(Q)$(MAKE) --no-print-directory images IMAGE_LANGS=go
	$(Q)scripts/with-kvm --arch $(ARCH) $(B)/bin/runvm --lang go examples/hello.go
