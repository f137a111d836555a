/* What a finished RUN, or a VM that stopped, means to runvm's callers: the
 * exit statuses of every mode, and the newline-delimited JSON events of
 * `--json` and API mode (docs/cli.md is the reference). Pure functions of
 * agent messages and stop reasons; no I/O. */
#ifndef RUNVM_EVENT_H
#define RUNVM_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol/msg.h"
#include "vmm/vm.h"

/* runvm's exit statuses, one table for every mode and for the API's
 * exit events (docs/cli.md). Besides these, a program's own 0..255, and
 * 0 for a bare boot whose guest ended itself. */
#define RUNVM_EXIT_USAGE        2   /* a bad command line */
#define RUNVM_EXIT_TIMEOUT      124 /* a time limit stopped it (timeout(1)) */
#define RUNVM_EXIT_INFRA        125 /* runvm, the VM or the agent failed */
#define RUNVM_EXIT_BUILD_FAILED 126 /* the build step failed */
#define RUNVM_EXIT_SIGNAL_BASE  128 /* + signal that killed the program */

/* runvm's exit status when the VM stopped without an outcome from the
 * agent: 124 for the watchdog, 128+N for signal N to runvm (0 for the
 * console escape, signo 0), for a guest that ended itself 0 where that is
 * an end (a bare boot; API mode after PUT /shutdown) and 125 where a run
 * was owed, and 125 for a VM that failed. */
int event_stop_status(enum vm_stop stop, int signo, bool guest_end_ok);

/* runvm's exit status for a final EXIT: 124 when timed out, 126 when it
 * ended the build phase, 128+N for signal N, else the exit code. */
int event_exit_status(const struct msg_exit *e);

/* Appends {"type":"output","phase":..,"stream":..,"data":..} and a newline
 * to out. Bytes that are not valid UTF-8 make the chunk go as
 * "data_base64" instead, so nothing is lost. */
void event_output(struct msg_buf *out, const struct msg_output *o);

/* Appends the event for an EXIT: "exit" for the final one (with "status",
 * runvm's exit status), "step" for a build step that succeeded. */
void event_exit(struct msg_buf *out, const struct msg_exit *e);

/* Appends a final {"type":"exit","status":STATUS,"error":MESSAGE}. */
void event_failure(struct msg_buf *out, int status, const char *message);

/* Appends s as a JSON string (quotes included), escaping as RFC 8259
 * requires; bytes that are not valid UTF-8 become U+FFFD. */
void event_json_string(struct msg_buf *out, const char *s, size_t len);

/* true if p[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool event_utf8_valid(const unsigned char *p, size_t len);

#endif
