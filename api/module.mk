# api/: the HTTP/1.1 front ends: API mode (server.c, run.c) and runvm
# serve (serve.c, with judge.c, piston.c, collect.c, metrics.c), on one
# HTTP stack (http.c, httpd.c).
API_SRCS := api/collect.c api/http.c api/httpd.c api/judge.c api/metrics.c \
            api/piston.c api/request.c api/run.c api/serve.c api/server.c
RUNVM_SRCS += $(API_SRCS)

FUZZ_TARGETS += fuzz_http
fuzz_http_SRCS := api/http.c
# POST /start from bytes to the RUN on the wire, and the session's agent
# client reading a hostile agent (its module.mk is session/'s; its caller
# here is API mode). `=`: PROTOCOL_SRCS is set by a later module.
FUZZ_TARGETS += fuzz_api_request fuzz_agent_client fuzz_serve
fuzz_api_request_SRCS = api/http.c api/request.c session/agent_client.c \
                        core/evloop.c $(PROTOCOL_SRCS)
fuzz_api_request_LIBS := -ljansson
# runvm serve's parsers: Piston and judge bodies, a VM's event stream.
fuzz_serve_SRCS = api/collect.c api/piston.c api/judge.c api/request.c \
                  session/event.c session/agent_client.c core/evloop.c \
                  $(PROTOCOL_SRCS)
fuzz_serve_LIBS := -ljansson
fuzz_agent_client_SRCS = session/agent_client.c core/evloop.c $(PROTOCOL_SRCS)

# The server driven over its socket, the real agent core behind it, no KVM
# (a zeroed struct vm lends it an event loop and vm_request_stop).
UNIT_TESTS += test_api
test_api_SRCS = $(API_SRCS) session/session.c session/agent_client.c \
                session/event.c session/catalog.c $(LANGCONF_SRCS) \
                vmm/vm.c vmm/vcpu.c vmm/kvm.c vmm/exit.c vmm/seccomp.c \
                vmm/kvm_stats.c vmm/cgroup.c devices/boot_timer.c $(CORE_SRCS) \
                $(ARCH_SRCS) $(PROTOCOL_SRCS) $(AGENT_FIXTURE)
test_api_LIBS := -ljansson -lz -lpthread -lseccomp

# runvm serve driven over its socket, the test binary playing its
# children (API-mode runvms) without KVM.
UNIT_TESTS += test_serve
test_serve_SRCS = api/serve.c api/httpd.c api/http.c api/request.c \
                  api/collect.c api/piston.c api/judge.c api/metrics.c \
                  session/catalog.c session/event.c session/agent_client.c \
                  vmm/cgroup.c $(LANGCONF_SRCS) $(CORE_SRCS) $(PROTOCOL_SRCS)
test_serve_LIBS := -ljansson
