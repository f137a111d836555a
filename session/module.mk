# session/: the host side of the agent protocol: the agent client, the
# session state machine, and what an outcome means to callers (exit status,
# NDJSON events).
SESSION_SRCS := session/agent_client.c session/session.c session/event.c \
                session/catalog.c
RUNVM_SRCS += $(SESSION_SRCS)
RUNVM_LIBS += -ljansson

UNIT_TESTS += test_agent_client
test_agent_client_SRCS = session/agent_client.c core/evloop.c \
                         $(PROTOCOL_SRCS) $(AGENT_FIXTURE)

UNIT_TESTS += test_event
test_event_SRCS = session/event.c $(PROTOCOL_SRCS)
test_event_LIBS := -lz

# The session state machine against the real agent core.
UNIT_TESTS += test_session
test_session_SRCS = session/session.c session/agent_client.c session/event.c \
                    core/evloop.c $(PROTOCOL_SRCS) $(AGENT_FIXTURE)
test_session_LIBS := -lz

UNIT_TESTS += test_catalog
test_catalog_SRCS = session/catalog.c session/event.c $(LANGCONF_SRCS) \
                    $(PROTOCOL_SRCS)
test_catalog_LIBS := -lz
