# api/ and the agent's host side: runvm --exec, runvm --lang (one-shot CLI)
# and API mode. The agent client and its users live in vmm/ and api/; the
# protocol sources are shared with the agent.
AGENT_HOST_SRCS := vmm/agent_client.c
# (api/ is read before protocol/module.mk, hence the explicit list.)
RUNVM_SRCS += protocol/slip.c protocol/crc32.c protocol/msg.c \
              $(AGENT_HOST_SRCS)

UNIT_TESTS += test_agent_client
test_agent_client_SRCS = vmm/agent_client.c vmm/evloop.c $(PROTOCOL_SRCS) \
                         $(AGENT_CORE_SRCS)
