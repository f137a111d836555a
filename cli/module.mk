# cli/: runvm's command line: main(), the one-shot and low-level modes,
# option parsing.
RUNVM_SRCS += cli/args.c cli/cli.c cli/main.c

UNIT_TESTS += test_args
test_args_SRCS := cli/args.c

# `make hello`: the product's first command on a fresh machine. Builds
# runvm, the kernel and the Go image, then runs examples/hello.go in a VM
# (inside the nested KVM host where /dev/kvm is missing).
.PHONY: hello
hello: all kernel
	$(Q)$(MAKE) --no-print-directory images IMAGE_LANGS=go
	$(Q)scripts/with-kvm $(B)/bin/runvm --lang go examples/hello.go
