# tests/bench: the native peer of the exec round-trip benchmark
# (tests/bench/run).
TEST_PROGS += bench_spawn

# runvm's HTTP server against libmicrohttpd on one event loop
# (tests/bench/httpd.sh, `make bench`'s httpd part).
HTTPD_PEER_SRCS := tests/bench/httpd_peer.c api/httpd.c api/http.c \
	core/evloop.c protocol/msg_buf.c session/event.c

# What runvm's seccomp filters add to a system call, natively
# (tests/bench/sandbox.sh, `make bench`'s sandbox part).
SECCOMP_COST_SRCS := tests/bench/seccomp_cost.c vmm/sandbox.c vmm/seccomp.c
