#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/evloop.h"

struct pipe_ctx {
    struct evloop *loop;
    int fd;
    int calls;
    char got;
};

static void on_readable(void *opaque, uint32_t events)
{
    struct pipe_ctx *c = opaque;
    assert_true(events & EPOLLIN);
    assert_int_equal(read(c->fd, &c->got, 1), 1);
    c->calls++;
    evloop_stop(c->loop);
}

static void dispatches_and_stops(void **state)
{
    (void)state;
    struct evloop loop;
    int p[2];
    assert_int_equal(evloop_init(&loop), 0);
    assert_int_equal(pipe(p), 0);
    struct pipe_ctx c = {.loop = &loop, .fd = p[0]};
    assert_int_equal(evloop_add(&loop, p[0], EPOLLIN, on_readable, &c), 0);
    assert_int_equal(evloop_add(&loop, p[0], EPOLLIN, on_readable, &c),
                     -EEXIST);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(evloop_run(&loop, 5000), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.got, 'x');
    evloop_del(&loop, p[0]);
    assert_int_equal(evloop_mod(&loop, p[0], EPOLLIN), -ENOENT);
    close(p[0]);
    close(p[1]);
    evloop_free(&loop);
}

static void times_out(void **state)
{
    (void)state;
    struct evloop loop;
    assert_int_equal(evloop_init(&loop), 0);
    assert_int_equal(evloop_run(&loop, 20), -ETIMEDOUT);
    evloop_free(&loop);
}

static void *stopper(void *arg)
{
    usleep(10000);
    evloop_stop(arg);
    return NULL;
}

static void stops_from_another_thread(void **state)
{
    (void)state;
    struct evloop loop;
    pthread_t t;
    assert_int_equal(evloop_init(&loop), 0);
    assert_int_equal(pthread_create(&t, NULL, stopper, &loop), 0);
    assert_int_equal(evloop_run(&loop, 10000), 0);
    pthread_join(t, NULL);
    evloop_free(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dispatches_and_stops),
        cmocka_unit_test(times_out),
        cmocka_unit_test(stops_from_another_thread),
    };
    return cmocka_run_group_tests_name("evloop", tests, NULL, NULL);
}
