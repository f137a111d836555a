#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
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

/* Two fds ready in one batch: the first callback removes the other and
 * gives its slot to a third fd that is not ready. The removed fd's event,
 * already in the batch, must not reach the third's callback. */
struct swap_ctx {
    struct evloop *loop;
    int a, b, c; /* the read ends */
    bool swapped;
    int c_calls;
};

struct swap_end {
    struct swap_ctx *x;
    int self, other;
};

static void on_third(void *opaque, uint32_t events)
{
    struct swap_ctx *x = opaque;
    (void)events;
    x->c_calls++;
}

static void on_first_of_two(void *opaque, uint32_t events)
{
    struct swap_end *e = opaque;
    struct swap_ctx *x = e->x;
    (void)events;
    char ch;
    assert_int_equal(read(e->self, &ch, 1), 1);
    if (x->swapped)
        return;
    x->swapped = true;
    /* Whichever came first: the other one's slot goes to c. */
    evloop_del(x->loop, e->other);
    assert_int_equal(evloop_add(x->loop, x->c, EPOLLIN, on_third, x), 0);
}

static void a_reused_slot_gets_no_stale_event(void **state)
{
    (void)state;
    struct evloop loop;
    int pa[2], pb[2], pc[2];
    assert_int_equal(evloop_init(&loop), 0);
    assert_int_equal(pipe(pa), 0);
    assert_int_equal(pipe(pb), 0);
    assert_int_equal(pipe(pc), 0);
    struct swap_ctx x = {.loop = &loop, .a = pa[0], .b = pb[0], .c = pc[0]};
    struct swap_end ea = {&x, pa[0], pb[0]}, eb = {&x, pb[0], pa[0]};
    assert_int_equal(evloop_add(&loop, pa[0], EPOLLIN, on_first_of_two, &ea),
                     0);
    assert_int_equal(evloop_add(&loop, pb[0], EPOLLIN, on_first_of_two, &eb),
                     0);
    assert_int_equal(write(pa[1], "x", 1), 1);
    assert_int_equal(write(pb[1], "x", 1), 1);
    assert_int_equal(evloop_run(&loop, 200), -ETIMEDOUT);
    assert_true(x.swapped);
    assert_int_equal(x.c_calls, 0); /* pc is empty: nothing for it */
    evloop_del(&loop, pa[0]);
    evloop_del(&loop, pb[0]);
    evloop_del(&loop, pc[0]);
    for (int i = 0; i < 2; i++) {
        close(pa[i]);
        close(pb[i]);
        close(pc[i]);
    }
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
        cmocka_unit_test(a_reused_slot_gets_no_stale_event),
        cmocka_unit_test(times_out),
        cmocka_unit_test(stops_from_another_thread),
    };
    return cmocka_run_group_tests_name("evloop", tests, NULL, NULL);
}
