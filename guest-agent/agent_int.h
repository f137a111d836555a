/* Private to the guest agent's core (agent.c, workdir.c, job.c,
 * job_step.c): the agent's state and the functions its files share. The
 * public interface is agent.h. */
#ifndef RUNVM_AGENT_INT_H
#define RUNVM_AGENT_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "guest-agent/agent.h"
#include "protocol/langconf.h"
#include "protocol/msg.h"

#define MAX_ARGV 256
#define MAX_ENV  256

struct job {
    bool active;
    uint32_t id;
    uint8_t *payload; /* copy of the RUN payload; run's fields point here */
    struct msg_run run;
    bool has_build;
    const char *build_argv[MAX_ARGV];
    const char *run_argv[MAX_ARGV];
    const char *env[MAX_ENV + 1];
    char *env_storage[MAX_ENV];     /* the HOME=, TMPDIR= strings we made */
    struct msg_limits limits;       /* the run step's, defaults filled in */
    struct msg_limits build_limits; /* the build step's */
    struct msg_buf stdin_pending;
    bool stdin_eof;

    /* The step in progress. */
    uint8_t phase;
    pid_t pid; /* 0: none */
    int out_fd, err_fd, in_fd;
    uint64_t start_ms, deadline_ms;
    uint64_t cpu_check_ms; /* next look at the cgroup's CPU time; 0: none */
    bool reaped;
    int wstatus;
    struct rusage ru;
    uint64_t output;
    bool truncated, timed_out;
    char cgroup[256]; /* "" when the step has none */
    bool cgroup_limits_memory;
};

struct agent {
    struct agent_config cfg;
    struct langconf lang;
    struct msg_reader reader;
    struct msg_buf out;     /* SLIP bytes waiting for the channel */
    struct msg_buf scratch; /* message being built */
    int sigfd;
    bool channel_closed;
    bool shutdown;
    int fatal; /* -errno that ends the loop */
    struct job job;
    char workdir[PATH_MAX]; /* "" when none */
    long ncpus; /* online CPUs: how fast a step can spend CPU time */
    unsigned seq;
    unsigned file_seq; /* temporary names of files being written */
    uint8_t readbuf[MSG_CHUNK];
};

/* ---- agent.c: helpers and sending ---- */

void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t agent_now_ms(void);
/* Closes *fd if open and marks it closed (-1). */
void agent_close_fd(int *fd);
/* Sets O_NONBLOCK. 0 or -errno. */
int agent_set_nonblock(int fd);
/* Moves the message built in scratch into the output queue; built is what
 * the builder returned (an error there or here ends the loop: a->fatal). */
void agent_queue_scratch(struct agent *a, int built);
/* Queues an ERROR for request id. */
void agent_send_error(struct agent *a, uint32_t id, uint32_t code,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- workdir.c: the work directory ---- */

/* Removes the work directory and all in it, if there is one; then there is
 * none. -errno (logged) when some of it could not be removed: then it is
 * still the work directory. */
int workdir_remove(struct agent *a);
/* Makes a fresh work directory owned by the step user, after removing the
 * previous one and emptying the tmp root (cfg.tmp_root): a new submission
 * sees nothing of the last. 0 or -errno (then there is none). */
int workdir_make(struct agent *a);
/* Whether n is a plain file name: not empty, ".", "..", no '/' or NUL. */
bool workdir_valid_name(struct msg_bytes n);
/* Writes one request file, whose name workdir_valid_name accepted, into the
 * work directory, replacing whatever an earlier step left under its name
 * (a directory there is -EISDIR). Never blocks on, nor writes through,
 * what the snippet made. 0 or -errno. */
int workdir_write_file(struct agent *a, const struct msg_file *f);

/* ---- job.c: setting a job up ---- */

/* Frees what the job holds and zeroes it (no step, fds -1). */
void job_clear(struct job *j);
/* Ends the agent's job: job_clear. */
void job_end(struct agent *a);
/* Names unnamed files from lang.conf SOURCE and checks every name. 0, or
 * -EINVAL with the ERROR sent. */
int job_name_files(struct agent *a, struct job *j);
/* The limits of a step of the job. */
const struct msg_limits *job_limits(const struct job *j, uint8_t phase);
/* Fills the job's argv, environment and limits from the request and
 * lang.conf. 0 or an ERROR code (the message is sent). */
int job_resolve(struct agent *a, struct job *j);

/* ---- job_step.c: running the job's steps ---- */

/* Starts step phase of the job under its limits. 0 or -errno. */
int job_step_start(struct agent *a, uint8_t phase);
/* Sends what a pipe holds as OUTPUT; past the output cap, kills the step
 * and discards. 1 after reading, 0 at EOF, -1 when empty for now. */
int job_step_pump_output(struct agent *a, int fd, uint8_t stream);
/* Writes pending stdin to the step; closes its stdin at EOF or EPIPE. */
void job_step_pump_stdin(struct agent *a);
/* After the step leader was reaped: drains, sends EXIT, then starts the run
 * step after a good build or ends the job. */
void job_step_finish(struct agent *a);
/* Collects exited children; the step leader's status is kept. */
void job_step_reap(struct agent *a);
/* How long the event loop may wait before job_step_check_time has work:
 * the step's wall deadline or the next look at its CPU time; -1 when no
 * step runs. */
int job_step_poll_timeout(struct agent *a);
/* Kills the step (marking it timed out) past its wall deadline, or once
 * its cgroup has used its CPU limit: the CPU time of all its processes
 * together, where RLIMIT_CPU bounds each process alone. */
void job_step_check_time(struct agent *a);
/* Kills the step in progress, if any, and ends the job. */
void job_step_kill(struct agent *a);

#endif
