# protocol/: SLIP framing, agent messages and dotted versions, compiled into
# both runvm and runvm-agent; the lang.conf parser, compiled into all three
# programs.
PROTOCOL_SRCS := protocol/slip.c protocol/crc32.c protocol/msg_buf.c \
                 protocol/msg.c protocol/msg_build.c protocol/msg_decode.c \
                 protocol/msg_reader.c protocol/version.c
AGENT_SRCS += $(PROTOCOL_SRCS)
RUNVM_SRCS += $(PROTOCOL_SRCS)

# lang.conf (docs/lang-conf.md): one parser for the agent, which reads it at
# boot, and the image builder, which writes it; runvm reads the configs
# installed beside the images (session/catalog.c).
LANGCONF_SRCS := protocol/langconf.c
AGENT_SRCS += $(LANGCONF_SRCS)
BUILDER_SRCS += $(LANGCONF_SRCS) protocol/version.c
RUNVM_SRCS += $(LANGCONF_SRCS)

UNIT_TESTS += test_slip test_msg test_langconf test_version
test_version_SRCS := protocol/version.c
test_slip_SRCS := protocol/slip.c
test_msg_SRCS := $(PROTOCOL_SRCS)
test_msg_LIBS := -lz
test_langconf_SRCS := $(LANGCONF_SRCS)

FUZZ_TARGETS += fuzz_slip
fuzz_slip_SRCS := $(PROTOCOL_SRCS)
FUZZ_TARGETS += fuzz_langconf
fuzz_langconf_SRCS := $(LANGCONF_SRCS)
