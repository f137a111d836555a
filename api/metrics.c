#include "api/metrics.h"

#include <stdio.h>
#include <string.h>

const double metrics_bounds[METRICS_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

void histogram_observe(struct histogram *h, double seconds)
{
    for (size_t i = 0; i < METRICS_BUCKETS; i++)
        if (seconds <= metrics_bounds[i])
            h->le[i]++;
    h->count++;
    h->sum += seconds;
}

static void put(struct msg_buf *b, const char *s)
{
    msg_buf_append(b, s, strlen(s));
}

void metrics_head(struct msg_buf *b, const char *name, const char *type,
                  const char *help)
{
    char line[512];
    snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help,
             name, type);
    put(b, line);
}

void metrics_sample(struct msg_buf *b, const char *name, const char *labels,
                    double value)
{
    char line[512];
    snprintf(line, sizeof(line), "%s%s%s%s %.17g\n", name, labels[0] ? "{" : "",
             labels, labels[0] ? "}" : "", value);
    put(b, line);
}

void metrics_histogram(struct msg_buf *b, const char *name, const char *labels,
                       const struct histogram *h)
{
    char line[512];
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        snprintf(line, sizeof(line), "%s_bucket{%s%sle=\"%g\"} %llu\n", name,
                 labels, sep, metrics_bounds[i], (unsigned long long)h->le[i]);
        put(b, line);
    }
    snprintf(line, sizeof(line),
             "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum%s%s%s %.17g\n"
             "%s_count%s%s%s %llu\n",
             name, labels, sep, (unsigned long long)h->count, name,
             labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum, name,
             labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
             (unsigned long long)h->count);
    put(b, line);
}
