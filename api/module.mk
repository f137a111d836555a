# api/ and the agent's host side: runvm --exec, runvm --lang (one-shot CLI)
# and API mode. The agent client and its users live in vmm/ and api/; the
# protocol sources are shared with the agent.
AGENT_HOST_SRCS := vmm/agent_client.c vmm/agent_channel.c vmm/agent_exec.c \
                   vmm/cli.c api/event.c api/http.c api/server.c
# (api/ is read before protocol/module.mk, hence the explicit list.)
RUNVM_SRCS += protocol/slip.c protocol/crc32.c protocol/msg.c \
              $(AGENT_HOST_SRCS)
RUNVM_LIBS += -ljansson

UNIT_TESTS += test_agent_client
test_agent_client_SRCS = vmm/agent_client.c vmm/evloop.c $(PROTOCOL_SRCS) \
                         $(AGENT_CORE_SRCS)

UNIT_TESTS += test_event
test_event_SRCS = api/event.c $(PROTOCOL_SRCS)
test_event_LIBS := -lz

FUZZ_TARGETS += fuzz_http
fuzz_http_SRCS := api/http.c

# `make hello`: the product's first command on a fresh machine. Builds
# runvm, the kernel and the Go image, then runs examples/hello.go in a VM
# (inside the nested KVM host where /dev/kvm is missing).
.PHONY: hello
hello: all kernel
	$(Q)$(MAKE) --no-print-directory images IMAGE_LANGS=go
	$(Q)scripts/with-kvm $(B)/bin/runvm --lang go examples/hello.go
