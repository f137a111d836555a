# api/: API mode's HTTP/1.1 server on a Unix socket.
API_SRCS := api/http.c api/request.c api/run.c api/server.c
RUNVM_SRCS += $(API_SRCS)

FUZZ_TARGETS += fuzz_http
fuzz_http_SRCS := api/http.c

