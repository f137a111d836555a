/* Prometheus text exposition (version 0.0.4) for runvm serve's
 * GET /metrics: counters, gauges and histograms with fixed buckets in
 * seconds. Pure: numbers in, text out. */
#ifndef RUNVM_METRICS_H
#define RUNVM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/msg.h"

#define METRICS_BUCKETS 14

/* Seconds, cumulative as Prometheus counts them. */
struct histogram {
    uint64_t le[METRICS_BUCKETS]; /* observations <= metrics_bounds[i] */
    uint64_t count;
    double sum;
};

extern const double metrics_bounds[METRICS_BUCKETS];

void histogram_observe(struct histogram *h, double seconds);

/* "# HELP name help\n# TYPE name type\n" */
void metrics_head(struct msg_buf *b, const char *name, const char *type,
                  const char *help);

/* One sample: name{labels} value ("" labels: none). */
void metrics_sample(struct msg_buf *b, const char *name, const char *labels,
                    double value);

/* A histogram's _bucket, _sum and _count samples, with labels ("" for
 * none) before "le". */
void metrics_histogram(struct msg_buf *b, const char *name, const char *labels,
                       const struct histogram *h);

#endif
