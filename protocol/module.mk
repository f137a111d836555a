# protocol/: SLIP framing and agent messages, compiled into both runvm and
# runvm-agent.
PROTOCOL_SRCS := protocol/slip.c protocol/crc32.c protocol/msg.c
AGENT_SRCS += $(PROTOCOL_SRCS)
RUNVM_SRCS += $(PROTOCOL_SRCS)

UNIT_TESTS += test_slip test_msg
test_slip_SRCS := protocol/slip.c
test_msg_SRCS := $(PROTOCOL_SRCS)
test_msg_LIBS := -lz

FUZZ_TARGETS += fuzz_slip
fuzz_slip_SRCS := $(PROTOCOL_SRCS)
