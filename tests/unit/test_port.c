#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-agent/port.h"

/* A fake sysfs in a temporary directory. */
static void put(const char *root, const char *rel, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    if (!text)
        return;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    char *root = strdup("/tmp/test_port.XXXXXX");
    assert_non_null(mkdtemp(root));
    *state = root;
    return 0;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
    assert_int_equal(system(cmd), 0);
    free(*state);
    return 0;
}

/* 64 feature characters with the given bits set. */
static const char *features(int bit_a, int bit_b)
{
    static char f[66];
    memset(f, '0', 64);
    if (bit_a >= 0)
        f[bit_a] = '1';
    if (bit_b >= 0)
        f[bit_b] = '1';
    f[64] = '\n';
    f[65] = '\0';
    return f;
}

static void finds_the_named_port(void **state)
{
    const char *root = *state;
    char out[64];
    put(root, "class/virtio-ports/vport1p0/name", "other\n");
    put(root, "class/virtio-ports/vport2p0/", NULL); /* not named yet */
    assert_int_equal(port_find(root, "runvm.agent", out, sizeof(out)), -ENOENT);
    put(root, "class/virtio-ports/vport3p0/name", "runvm.agent\n");
    assert_int_equal(port_find(root, "runvm.agent", out, sizeof(out)), 0);
    assert_string_equal(out, "/dev/vport3p0");
    /* A prefix is not the name. */
    assert_int_equal(port_find(root, "runvm", out, sizeof(out)), -ENOENT);
    assert_int_equal(port_find(root, "runvm.agent", out, 8), -ENAMETOOLONG);
}

static void no_sysfs_is_no_port(void **state)
{
    char out[64], path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/missing", (char *)*state);
    assert_int_equal(port_find(path, "runvm.agent", out, sizeof(out)), -ENOENT);
    assert_false(port_multiport_present(path));
    assert_int_equal(port_wait(path, "runvm.agent", 1000, out, sizeof(out)),
                     -ENOENT);
}

static void multiport_only_on_a_console(void **state)
{
    const char *root = *state;
    /* virtio-net with bit 1 (its CTRL_GUEST_OFFLOADS) is not a console. */
    put(root, "bus/virtio/devices/virtio0/device", "0x0001\n");
    put(root, "bus/virtio/devices/virtio0/features", features(1, 32));
    /* A console without MULTIPORT (bit 0 is F_SIZE): hvc0 only. */
    put(root, "bus/virtio/devices/virtio1/device", "0x0003\n");
    put(root, "bus/virtio/devices/virtio1/features", features(0, 32));
    assert_false(port_multiport_present(root));
    char out[64];
    assert_int_equal(port_wait(root, "runvm.agent", 1000, out, sizeof(out)),
                     -ENOENT);
    put(root, "bus/virtio/devices/virtio2/device", "0x0003\n");
    put(root, "bus/virtio/devices/virtio2/features", features(1, 32));
    assert_true(port_multiport_present(root));
}

static void waits_for_the_port_of_a_multiport_console(void **state)
{
    const char *root = *state;
    put(root, "bus/virtio/devices/virtio0/device", "0x0003\n");
    put(root, "bus/virtio/devices/virtio0/features", features(1, 32));
    char out[64];
    /* Announced but never named: the wait ends at its limit. */
    assert_int_equal(port_wait(root, "runvm.agent", 20, out, sizeof(out)),
                     -ETIMEDOUT);
    put(root, "class/virtio-ports/vport0p0/name", "runvm.agent");
    assert_int_equal(port_wait(root, "runvm.agent", 20, out, sizeof(out)), 0);
    assert_string_equal(out, "/dev/vport0p0");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(finds_the_named_port),
        T(no_sysfs_is_no_port),
        T(multiport_only_on_a_console),
        T(waits_for_the_port_of_a_multiport_console),
    };
    return cmocka_run_group_tests_name("port", tests, NULL, NULL);
}
