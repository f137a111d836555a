/* Agent protocol messages (docs/protocol.md is the spec): a fixed 16-byte
 * little-endian header, a payload of TLV fields and a CRC-32, carried in one
 * SLIP frame each. Shared by runvm (host) and runvm-agent (guest).
 *
 * Building: msg_begin, msg_put_*, msg_end on a struct msg_buf; errors are
 * sticky and reported by msg_end, so the calls in between need no checks.
 * Reading: feed channel bytes to a struct msg_reader; it calls back with a
 * checked struct msg_view; msg_decode_* turn a view into a typed struct whose
 * byte fields point into the frame (valid only during the callback). */
#ifndef RUNVM_MSG_H
#define RUNVM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/slip.h"

#define MSG_MAGIC   0x5652 /* "RV" on the wire */
#define MSG_VERSION 1
/* The oldest agent (HELLO's AGENT_VERSION) that understands what runvm
 * sends within MSG_VERSION: BUILD_LIMITS, a FILE without a name, ANNOUNCE
 * (docs/protocol.md, "Compatibility"). runvm refuses an older one at its
 * HELLO. */
#define MSG_AGENT_MIN_VERSION "0.2.0"
/* The first agent that applies ANNOUNCE's ENTROPY and REALTIME_NS: a VM
 * is snapshotted only with one at least this new. */
#define MSG_AGENT_REFRESH_VERSION "0.3.0"
/* The limits of a step whose RUN gives none (the agent's). */
#define MSG_DEFAULT_WALL_MS    30000
#define MSG_DEFAULT_MAX_OUTPUT (16ull << 20)
#define MSG_HEADER_SIZE        16
#define MSG_CRC_SIZE           4
#define MSG_MAX_PAYLOAD        (8u << 20)
#define MSG_MAX_FRAME          (MSG_HEADER_SIZE + MSG_MAX_PAYLOAD + MSG_CRC_SIZE)
/* The virtio-serial port name runvm gives the agent channel: the agent
 * finds its port by this name in /sys/class/virtio-ports/ (docs/protocol.md).
 */
#define MSG_CHANNEL_PORT_NAME "runvm.agent"
/* OUTPUT and STDIN senders split data into chunks of at most this size. */
#define MSG_CHUNK 65536

enum msg_type {
    MSG_HELLO = 1,    /* agent -> host: ready */
    MSG_RUN = 2,      /* host -> agent: build and run */
    MSG_STDIN = 3,    /* host -> agent: more stdin for the run step */
    MSG_OUTPUT = 4,   /* agent -> host: bytes a step wrote */
    MSG_EXIT = 5,     /* agent -> host: a step ended */
    MSG_ERROR = 6,    /* either way: a request failed */
    MSG_SHUTDOWN = 7, /* host -> agent: sync and power off */
    MSG_ANNOUNCE = 8, /* host -> agent: answer with a fresh HELLO */
};

/* Header flags, by message type. */
#define MSG_RUN_REUSE_WORKDIR 0x0001 /* keep the previous RUN's directory */
#define MSG_RUN_SKIP_BUILD    0x0002 /* run step only */
#define MSG_RUN_STDIN_OPEN    0x0004 /* STDIN frames follow; wait for EOF */
#define MSG_STDIN_EOF         0x0001 /* no more stdin after these bytes */

/* TLV tags. Integers are 1 to 8 bytes little-endian (senders use 4 or 8);
 * strings are bytes without a terminator; string lists are strings each
 * followed by one NUL byte. Receivers skip tags they do not know. */
enum msg_tag {
    /* HELLO */
    MSG_TAG_AGENT_VERSION = 0x01, /* string */
    MSG_TAG_LANG = 0x02,          /* string */
    MSG_TAG_TOOLCHAIN = 0x03,     /* string */
    MSG_TAG_SOURCE = 0x04,        /* string: file name the language expects */
    /* RUN */
    MSG_TAG_FILE = 0x10,       /* nested TLV: FILE_NAME, FILE_MODE, FILE_DATA */
    MSG_TAG_FILE_NAME = 0x11,  /* string; absent or empty: lang.conf SOURCE */
    MSG_TAG_FILE_MODE = 0x12,  /* integer, permission bits */
    MSG_TAG_FILE_DATA = 0x13,  /* bytes */
    MSG_TAG_BUILD_ARGV = 0x14, /* string list; empty list: no build step */
    MSG_TAG_RUN_ARGV = 0x15,   /* string list */
    MSG_TAG_ENV = 0x16,        /* string list of KEY=VALUE */
    MSG_TAG_STDIN = 0x17,      /* bytes */
    MSG_TAG_WALL_MS = 0x18,    /* integer, per step (see BUILD_LIMITS) */
    MSG_TAG_MEM_BYTES = 0x19,  /* integer */
    MSG_TAG_MAX_PROCS = 0x1A,  /* integer */
    MSG_TAG_MAX_OUTPUT = 0x1B, /* integer, stdout + stderr bytes per step */
    MSG_TAG_CPU_MS = 0x1C,     /* integer, per step */
    /* Nested WALL_MS, CPU_MS, MEM_BYTES, MAX_PROCS, MAX_OUTPUT: the build
     * step's limits. When present, the limits above are the run step's
     * only; when absent, they are each step's (version 1 as first
     * published, so older senders keep their meaning). */
    MSG_TAG_BUILD_LIMITS = 0x1D,
    /* STDIN */
    MSG_TAG_DATA = 0x20, /* bytes */
    /* OUTPUT (and DATA) */
    MSG_TAG_PHASE = 0x30,  /* integer: enum msg_phase */
    MSG_TAG_STREAM = 0x31, /* integer: enum msg_stream */
    /* EXIT (and PHASE) */
    MSG_TAG_EXIT_CODE = 0x40, /* integer; present when the step exited */
    MSG_TAG_SIGNAL = 0x41,    /* integer; present when a signal killed it */
    MSG_TAG_WALL_USED = 0x42, /* integer, ms */
    MSG_TAG_CPU_USED = 0x43,  /* integer, ms */
    MSG_TAG_PEAK_MEM = 0x44,  /* integer, bytes */
    MSG_TAG_STATUS = 0x45,    /* integer: MSG_EXIT_* bits */
    /* ERROR */
    MSG_TAG_ERROR_CODE = 0x50, /* integer: enum msg_error_code */
    MSG_TAG_MESSAGE = 0x51,    /* string */
    /* ANNOUNCE (a VM restored from a snapshot: each one its own machine) */
    MSG_TAG_ENTROPY = 0x60,     /* bytes, at most MSG_MAX_ENTROPY: the host's
                                   random bytes for the guest's RNG */
    MSG_TAG_REALTIME_NS = 0x61, /* integer: the host's CLOCK_REALTIME, ns */
};

#define MSG_MAX_ENTROPY 512

enum msg_phase { MSG_PHASE_BUILD = 0, MSG_PHASE_RUN = 1 };
enum msg_stream { MSG_STREAM_STDOUT = 1, MSG_STREAM_STDERR = 2 };

/* EXIT status bits. */
#define MSG_EXIT_TIMED_OUT        0x1 /* wall or CPU limit killed the step */
#define MSG_EXIT_OUTPUT_TRUNCATED 0x2 /* output cap hit; step was killed */
#define MSG_EXIT_OOM_KILLED       0x4 /* memory limit killed the step */
#define MSG_EXIT_FINAL            0x8 /* last EXIT of this RUN */

enum msg_error_code {
    MSG_ERR_BAD_FRAME = 1,    /* a frame was dropped (CRC, version, size) */
    MSG_ERR_UNKNOWN_TYPE = 2, /* message type not handled by the receiver */
    MSG_ERR_BAD_REQUEST = 3,  /* malformed or invalid fields */
    MSG_ERR_BUSY = 4,         /* RUN while another RUN is active */
    MSG_ERR_NO_RUN = 5,       /* STDIN for no active RUN */
    MSG_ERR_NO_COMMAND = 6,   /* no run argv in request nor lang.conf */
    MSG_ERR_INTERNAL = 7,     /* the agent could not carry out the step */
};

/* ---- growable buffer and message building ------------------------------ */

struct msg_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t start; /* offset of the message being built */
    int err;      /* sticky: first -errno of the building calls */
};

void msg_buf_init(struct msg_buf *m);
void msg_buf_free(struct msg_buf *m);
/* Empties the buffer (keeps its memory) and clears the error. */
void msg_buf_reset(struct msg_buf *m);
/* Drops the first n bytes (a consumed prefix). */
void msg_buf_consume(struct msg_buf *m, size_t n);
/* Appends raw bytes. */
void msg_buf_append(struct msg_buf *m, const void *p, size_t n);
/* Makes room for n more bytes; returns where they go, or NULL (and sets the
 * sticky error). For the builders in msg.c and msg_build.c. */
uint8_t *msg_buf_reserve(struct msg_buf *m, size_t n);

/* Starts a message at the end of m. */
void msg_begin(struct msg_buf *m, uint8_t type, uint16_t flags, uint32_t id);
void msg_put_u64(struct msg_buf *m, uint16_t tag, uint64_t v);
void msg_put_bytes(struct msg_buf *m, uint16_t tag, const void *p, size_t n);
void msg_put_str(struct msg_buf *m, uint16_t tag, const char *s);
/* A string list from a NULL-terminated argv. */
void msg_put_strv(struct msg_buf *m, uint16_t tag, const char *const *argv);
/* A nested TLV: returns a mark to pass to msg_nest_end. */
size_t msg_nest_begin(struct msg_buf *m, uint16_t tag);
void msg_nest_end(struct msg_buf *m, size_t mark);
/* One FILE field; a NULL or empty name sends none (lang.conf SOURCE). */
void msg_put_file(struct msg_buf *m, const char *name, uint32_t mode,
                  const void *data, size_t len);
/* Patches the payload length, appends the CRC. 0, or the sticky error
 * (-ENOMEM, -EMSGSIZE when the payload exceeds MSG_MAX_PAYLOAD). */
int msg_end(struct msg_buf *m) __attribute__((warn_unused_result));

/* Appends the SLIP encoding of msg to wire. 0 or -ENOMEM. */
int msg_slip_append(struct msg_buf *wire, const uint8_t *msg, size_t len)
    __attribute__((warn_unused_result));

/* ---- parsing ----------------------------------------------------------- */

struct msg_view {
    uint8_t type;
    uint16_t flags;
    uint32_t id;
    const uint8_t *payload;
    uint32_t len;
};

/* Checks one decoded SLIP frame: size, magic, version, length, CRC.
 * 0, -EBADMSG (short, bad magic, length mismatch), -EPROTONOSUPPORT
 * (version), -EMSGSIZE (payload over MSG_MAX_PAYLOAD), -EILSEQ (CRC). */
int msg_parse(const uint8_t *frame, size_t len, struct msg_view *out)
    __attribute__((warn_unused_result));

struct tlv_iter {
    const uint8_t *p;
    size_t left;
};

void tlv_iter_init(struct tlv_iter *it, const uint8_t *p, size_t len);
/* 1 and the next field, 0 at the end, -EBADMSG when a field is truncated. */
int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val,
             uint32_t *len);
/* Reads a 1..8-byte little-endian integer. 0 or -EBADMSG. */
int tlv_uint(const uint8_t *val, uint32_t len, uint64_t *out);

struct msg_bytes {
    const uint8_t *p;
    uint32_t len;
};

/* Raw string list: each element ends with a NUL. */
struct msg_strlist {
    bool present;
    const uint8_t *p;
    uint32_t len;
};

/* Splits l into argv[0..n-1], argv[n] = NULL, pointing into l's bytes.
 * Returns n, -EBADMSG when the list does not end with NUL, -E2BIG when more
 * than max - 1 elements. */
int msg_strlist_split(const struct msg_strlist *l, const char **argv,
                      size_t max);

/* Copies a string field into a NUL-terminated heap string; NULL on ENOMEM or
 * when it holds a NUL byte. */
char *msg_bytes_strdup(struct msg_bytes b);

struct msg_hello {
    struct msg_bytes agent_version, lang, toolchain, source;
};

#define MSG_MAX_FILES 64

/* A name a host front end lets a client give a snippet's file (the API's
 * "files", the command line's FILEs): 1 to 64 letters, digits, '.', '_'
 * and '-', not starting with '.' or '-'. (The agent itself takes any plain
 * name.) */
bool msg_file_name_ok(const char *name);

struct msg_file {
    struct msg_bytes name; /* len 0: the receiver's lang.conf SOURCE */
    struct msg_bytes data;
    uint32_t mode; /* 0 when absent: 0644 */
};

/* 0 in a limit means "the agent's default". */
struct msg_limits {
    uint64_t wall_ms;
    uint64_t cpu_ms;
    uint64_t mem_bytes;
    uint64_t max_procs;
    uint64_t max_output;
};

struct msg_run {
    uint16_t flags;
    size_t nfiles;
    struct msg_file files[MSG_MAX_FILES];
    struct msg_strlist build_argv, run_argv, env;
    struct msg_bytes stdin_data;
    struct msg_limits limits; /* the run step's; the build's too unless: */
    bool has_build_limits;    /* BUILD_LIMITS present */
    struct msg_limits build_limits;
};

/* ANNOUNCE's optional fields: the agent mixes entropy into its kernel's
 * RNG and reseeds it, and sets the clock, before it answers. */
struct msg_announce {
    struct msg_bytes entropy; /* len 0: none */
    bool has_realtime;
    uint64_t realtime_ns;
};

struct msg_stdin {
    bool eof;
    struct msg_bytes data;
};

struct msg_output {
    uint8_t phase;
    uint8_t stream;
    struct msg_bytes data;
};

struct msg_exit {
    uint8_t phase;
    bool exited;     /* code is valid */
    bool signaled;   /* signal is valid */
    uint32_t code;   /* 0..255 */
    uint32_t signal; /* signal number */
    uint64_t wall_ms, cpu_ms, peak_mem;
    uint32_t status; /* MSG_EXIT_* */
};

struct msg_error {
    uint32_t code;
    struct msg_bytes message;
};

/* Typed decoders: 0, or -EBADMSG for a wrong type, a truncated field, a bad
 * integer width or a value out of range. */
int msg_decode_hello(const struct msg_view *v, struct msg_hello *out);
int msg_decode_run(const struct msg_view *v, struct msg_run *out);
int msg_decode_stdin(const struct msg_view *v, struct msg_stdin *out);
int msg_decode_output(const struct msg_view *v, struct msg_output *out);
int msg_decode_exit(const struct msg_view *v, struct msg_exit *out);
int msg_decode_error(const struct msg_view *v, struct msg_error *out);
/* An empty ANNOUNCE decodes to no entropy and no time; more entropy than
 * MSG_MAX_ENTROPY is -EBADMSG. */
int msg_decode_announce(const struct msg_view *v, struct msg_announce *out);

/* Typed builders: append one complete message to m. 0 or -errno. */
int msg_build_hello(struct msg_buf *m, uint32_t id, const struct msg_hello *h);
/* A file with an empty name goes without FILE_NAME; more than
 * MSG_MAX_FILES files: -E2BIG. */
int msg_build_run(struct msg_buf *m, uint32_t id, const struct msg_run *r);
int msg_build_stdin(struct msg_buf *m, uint32_t id, const void *p, size_t n,
                    bool eof);
int msg_build_output(struct msg_buf *m, uint32_t id, uint8_t phase,
                     uint8_t stream, const void *p, size_t n);
int msg_build_exit(struct msg_buf *m, uint32_t id, const struct msg_exit *e);
int msg_build_error(struct msg_buf *m, uint32_t id, uint32_t code,
                    const char *message);
int msg_build_shutdown(struct msg_buf *m, uint32_t id);
/* a NULL: an empty ANNOUNCE (just a fresh HELLO). */
int msg_build_announce(struct msg_buf *m, uint32_t id,
                       const struct msg_announce *a);

/* ---- reading a channel ------------------------------------------------- */

struct msg_stats {
    uint64_t messages;    /* delivered */
    uint64_t bad_frame;   /* short, bad magic or length mismatch */
    uint64_t bad_version; /* unknown protocol version */
    uint64_t bad_crc;
    uint64_t oversize; /* payload over MSG_MAX_PAYLOAD */
};

typedef void (*msg_handler_fn)(void *opaque, const struct msg_view *msg);
/* Told about every dropped frame (err as msg_parse returns, or -EBADMSG /
 * -EMSGSIZE for SLIP-level faults). */
typedef void (*msg_drop_fn)(void *opaque, int err);

struct msg_reader {
    struct slip_decoder slip;
    struct msg_stats stats;
    msg_handler_fn on_msg;
    msg_drop_fn on_drop; /* may be NULL */
    void *opaque;
};

/* 0 or -errno. */
int msg_reader_init(struct msg_reader *r, msg_handler_fn on_msg,
                    msg_drop_fn on_drop, void *opaque)
    __attribute__((warn_unused_result));
void msg_reader_free(struct msg_reader *r);
/* Feeds channel bytes in any chunking; calls on_msg for each good message. */
void msg_reader_feed(struct msg_reader *r, const uint8_t *data, size_t len);
/* All frames dropped so far, at either layer. */
uint64_t msg_reader_dropped(const struct msg_reader *r);

#endif
