# guest-agent/: runvm-agent, the guest's /init (static), also runnable on a
# host with --host for tests.
AGENT_CORE_SRCS := guest-agent/agent.c guest-agent/workdir.c guest-agent/job.c \
                   guest-agent/job_step.c guest-agent/step.c \
                   guest-agent/tree.c
AGENT_SRCS += $(AGENT_CORE_SRCS) guest-agent/pid1.c guest-agent/port.c \
              guest-agent/main.c

# The real agent core forked on a socketpair: for its own test and those
# of the host side of the protocol (session/, api/).
AGENT_FIXTURE = tests/unit/agent_fixture.c $(AGENT_CORE_SRCS) \
                $(LANGCONF_SRCS)

UNIT_TESTS += test_agent test_port
test_agent_SRCS = $(AGENT_FIXTURE) $(PROTOCOL_SRCS)
test_port_SRCS := guest-agent/port.c

# The agent core on hostile RUNs, steps faked at the step.h seam (the
# target defines step_spawn and the rest: nothing is forked). `=`:
# PROTOCOL_SRCS and LANGCONF_SRCS are set by a later module.
FUZZ_TARGETS += fuzz_agent_run
fuzz_agent_run_SRCS = $(filter-out guest-agent/step.c,$(AGENT_CORE_SRCS)) \
                      $(LANGCONF_SRCS) $(PROTOCOL_SRCS)
