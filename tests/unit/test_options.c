#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/options.h"

static void parses_numbers_in_range(void **state)
{
    (void)state;
    unsigned long v = 0;
    assert_int_equal(cli_parse_number("256", 32, 65536, &v), 0);
    assert_int_equal(v, 256);
    assert_int_equal(cli_parse_number("32", 32, 65536, &v), 0);
    assert_int_equal(v, 32);
    assert_int_equal(cli_parse_number("65536", 32, 65536, &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(cli_parse_number("007", 1, 10, &v), 0); /* decimal */
    assert_int_equal(v, 7);
}

static void refuses_what_is_not_a_number(void **state)
{
    (void)state;
    unsigned long v = 99;
    const char *bad[] = {"",      "-5",   "+5",  " 5",  "5 ",
                         "12abc", "0x10", "1e3", "abc", "5\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cli_parse_number(bad[i], 0, ULONG_MAX, &v), -EINVAL);
        assert_int_equal(v, 99); /* untouched */
    }
}

static void refuses_out_of_range(void **state)
{
    (void)state;
    unsigned long v = 99;
    assert_int_equal(cli_parse_number("31", 32, 65536, &v), -ERANGE);
    assert_int_equal(cli_parse_number("65537", 32, 65536, &v), -ERANGE);
    assert_int_equal(cli_parse_number("0", 1, 32, &v), -ERANGE);
    /* Past ULONG_MAX: strtoul saturates and says ERANGE. */
    assert_int_equal(
        cli_parse_number("99999999999999999999999", 0, ULONG_MAX, &v), -ERANGE);
    assert_int_equal(v, 99);
}

/* Parses a command line given as one string of words (no quoting). */
static int parse(struct cli_config *c, char *err, size_t len, const char *line)
{
    static char buf[1024];
    static char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof(buf), "runvm %s", line);
    for (char *w = strtok(buf, " "); w && argc < 63; w = strtok(NULL, " "))
        argv[argc++] = w;
    argv[argc] = NULL;
    err[0] = '\0';
    return cli_parse_args(argc, argv, c, err, len);
}

static void modes(void **state)
{
    (void)state;
    struct cli_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go a.go"), 0);
    assert_int_equal(c.mode, CLI_ONESHOT);
    assert_string_equal(c.lang, "go");
    assert_int_equal(c.nfiles, 1);
    assert_string_equal(c.files[0], "a.go");
    assert_null(c.kernel);
    /* More FILEs: each keeps its base name (checked here). */
    assert_int_equal(
        parse(&c, err, sizeof(err), "--lang go dir/main.go x/util.go b.go"), 0);
    assert_int_equal(c.nfiles, 3);
    assert_string_equal(c.files[1], "x/util.go");
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go@1.24 a.go"), 0);
    assert_string_equal(c.lang, "go@1.24");
    assert_int_equal(parse(&c, err, sizeof(err), "--lang rust@* a.rs"), 0);
    assert_int_equal(c.mem_mib, 0); /* sized from the image later */
    assert_int_equal(c.timeout_s, CLI_DEFAULT_RUN_TIMEOUT_S);
    assert_int_equal(c.build_timeout_s, CLI_DEFAULT_BUILD_TIMEOUT_S);
    /* Options after FILE, as a user types them. */
    assert_int_equal(parse(&c, err, sizeof(err),
                           "--lang go a.go --stdin in.txt --json "
                           "--timeout 5 --build-timeout 7 --mem 700 "
                           "--cpus 2 --console --net tap0 --boot-timer"),
                     0);
    assert_string_equal(c.stdin_path, "in.txt");
    assert_true(c.json && c.console && c.boot_timer);
    assert_int_equal(c.timeout_s, 5);
    assert_int_equal(c.build_timeout_s, 7);
    assert_int_equal(c.mem_mib, 700);
    assert_int_equal(c.cpus, 2);
    assert_string_equal(c.net_tap, "tap0");
    static const uint8_t qemu_like[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    assert_memory_equal(c.net_mac, qemu_like, 6); /* the default */
    assert_int_equal(parse(&c, err, sizeof(err),
                           "--lang go a.go --net tap1,mac=52:54:00:00:02:0f "
                           "--vconsole stdio"),
                     0);
    assert_string_equal(c.net_tap, "tap1");
    assert_int_equal(c.net_mac[5], 0x0f);
    assert_true(c.vconsole_stdio);
    assert_null(c.vconsole_path);
    assert_int_equal(
        parse(&c, err, sizeof(err), "--lang python --api-sock /tmp/s"), 0);
    assert_int_equal(c.mode, CLI_API);
    assert_string_equal(c.api_sock, "/tmp/s");
    assert_int_equal(parse(&c, err, sizeof(err), "--kernel k --initrd i"), 0);
    assert_int_equal(c.mode, CLI_BOOT);
    assert_int_equal(c.mem_mib, CLI_DEFAULT_BOOT_MEM_MIB);
    assert_int_equal(c.timeout_s, 0); /* none */
    assert_string_equal(c.cmdline, CLI_DEFAULT_CMDLINE);
    assert_false(c.cmdline_given);
    assert_int_equal(parse(&c, err, sizeof(err),
                           "--kernel k --initrd i --cmdline quiet "
                           "--vconsole unix:/tmp/v --timeout 9"),
                     0);
    assert_string_equal(c.cmdline, "quiet");
    assert_true(c.cmdline_given);
    assert_string_equal(c.vconsole_path, "/tmp/v");
    assert_false(c.vconsole_stdio);
    assert_int_equal(c.timeout_s, 9);
    assert_int_equal(
        parse(&c, err, sizeof(err), "--kernel k --initrd i --exec -- ls -l /"),
        0);
    assert_int_equal(c.mode, CLI_EXEC);
    assert_string_equal(c.exec_argv[0], "ls");
    assert_string_equal(c.exec_argv[1], "-l"); /* after --: not options */
    assert_string_equal(c.exec_argv[2], "/");
    assert_null(c.exec_argv[3]);
    /* Snapshots. */
    assert_int_equal(parse(&c, err, sizeof(err),
                           "--kernel k --initrd i --cpus 2 --snapshot-out d"),
                     0);
    assert_int_equal(c.mode, CLI_SNAPSHOT);
    assert_string_equal(c.snapshot_out, "d");
    assert_null(c.exec_argv);
    assert_int_equal(
        parse(&c, err, sizeof(err), "--restore d --timeout 5 --exec -- true"),
        0);
    assert_int_equal(c.mode, CLI_EXEC);
    assert_string_equal(c.restore, "d");
    assert_null(c.kernel);
    assert_string_equal(c.exec_argv[0], "true");
    assert_int_equal(
        parse(&c, err, sizeof(err), "--lang go --no-snapshot a.go"), 0);
    assert_true(c.no_snapshot);
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go a.go"), 0);
    assert_false(c.no_snapshot);
    assert_int_equal(
        parse(&c, err, sizeof(err), "snapshot --lang go --mem 600"), 0);
    assert_int_equal(c.mode, CLI_SNAPSHOT_LANG);
    assert_string_equal(c.lang, "go");
    assert_int_equal(c.mem_mib, 600);
    assert_int_equal(parse(&c, err, sizeof(err), "snapshot --verify /s"), 0);
    assert_int_equal(c.mode, CLI_SNAPSHOT_VERIFY);
    assert_string_equal(c.verify, "/s");
    assert_int_equal(parse(&c, err, sizeof(err),
                           "serve --api-sock /s --langs go,python@3.11 "
                           "--max-vms 8 --queue 64 --warm 0 --mem 600 "
                           "--listen 127.0.0.1:2000"),
                     0);
    assert_int_equal(c.mode, CLI_SERVE);
    assert_int_equal(c.nserve_langs, 2);
    assert_string_equal(c.serve_langs[0], "go");
    assert_string_equal(c.serve_langs[1], "python@3.11");
    assert_int_equal(c.max_vms, 8);
    assert_int_equal(c.queue, 64);
    assert_true(c.warm_given);
    assert_int_equal(c.warm, 0);
    assert_int_equal(c.timeout_s, CLI_DEFAULT_RUN_TIMEOUT_S);
    assert_string_equal(c.listen, "127.0.0.1:2000");
    assert_int_equal(parse(&c, err, sizeof(err), "serve --api-sock /s"), 0);
    assert_null(c.listen);
    assert_null(c.cgroup);
    /* --cgroup in every mode that makes a VM, serve included. */
    assert_int_equal(parse(&c, err, sizeof(err),
                           "serve --api-sock /s --cgroup /sys/fs/cgroup/r"),
                     0);
    assert_string_equal(c.cgroup, "/sys/fs/cgroup/r");
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go a.go --cgroup /c"),
                     0);
    assert_string_equal(c.cgroup, "/c");
    assert_int_equal(
        parse(&c, err, sizeof(err), "--restore d --cgroup /c --exec -- true"),
        0);
    assert_string_equal(c.cgroup, "/c");
    assert_int_equal(c.nserve_langs, 0); /* every language's default */
    assert_int_equal(c.max_vms, 0);      /* the caller's: the CPUs */
    assert_false(c.warm_given);
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go --api-fd 3"), 0);
    assert_int_equal(c.mode, CLI_API);
    assert_int_equal(c.api_fd, 3);
    assert_null(c.api_sock);
    assert_int_equal(parse(&c, err, sizeof(err), "--version --frob"), 0);
    assert_int_equal(c.mode, CLI_VERSION);
    assert_int_equal(parse(&c, err, sizeof(err), "--list-langs"), 0);
    assert_int_equal(c.mode, CLI_LIST_LANGS);
    assert_int_equal(parse(&c, err, sizeof(err), "--kernel k -h"), 0);
    assert_int_equal(c.mode, CLI_HELP);
}

static void bad_command_lines(void **state)
{
    (void)state;
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"--frobnicate", "unknown option --frobnicate"},
        {"--kernel k --initrd", "--initrd needs a value"},
        {"--initrd i", "--kernel KERNEL is required"},
        {"--kernel k", "--initrd CPIO is required"},
        {"--kernel k --initrd i extra", "unexpected argument extra"},
        {"--kernel k --initrd i --mem 31", "--mem 31: out of range (32 to"},
        {"--kernel k --initrd i --mem 65537", "out of range"},
        {"--kernel k --initrd i --mem 12abc", "--mem 12abc: not a number"},
        {"--kernel k --initrd i --mem -5", "not a number"},
        {"--kernel k --initrd i --cpus 0", "--cpus 0: out of range (1 to 32)"},
        {"--kernel k --initrd i --cpus 33", "out of range"},
        {"--kernel k --initrd i --timeout 0", "--timeout 0: out of range"},
        {"--kernel k --initrd i --timeout 604801", "out of range"},
        {"--lang go a.go --build-timeout 0", "out of range"},
        {"--lang go@ a.go", "not a language"},
        {"--lang go@1..2 a.go", "not a language"},
        {"--lang go@1.24x a.go", "not a language"},
        {"--lang go@latest a.go", "not a language"},
        {"--kernel k --initrd i --vconsole tcp:1", "want stdio or unix:PATH"},
        {"--kernel k --initrd i --vconsole unix:", "want stdio or unix:PATH"},
        {"--kernel k --initrd i --console --vconsole stdio",
         "both want stdin and stdout"},
        {"--kernel k --initrd i --vconsole unix:/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "path too long"},
        {"--kernel k --initrd i --net ,mac=52:54:00:00:00:01", "want TAP"},
        {"--kernel k --initrd i --net abcdefghijklmnop", "1 to 15 characters"},
        {"--kernel k --initrd i --net tap0,mac=01:00:5e:00:00:01",
         "a unicast MAC"},
        {"--kernel k --initrd i --net tap0,mc=52:54:00:00:00:01",
         "want TAP[,mac="},
        {"--kernel k --initrd i --exec", "--exec needs the program"},
        {"--kernel k --initrd i --exec --vconsole stdio -- ls",
         "drop --vconsole"},
        {"--kernel k --initrd i --stdin x", "--stdin goes with --lang"},
        {"--kernel k --initrd i --json", "--json goes with --lang"},
        {"--kernel k --initrd i --api-sock s", "--api-sock goes with --lang"},
        {"--kernel k --initrd i --build-timeout 5",
         "--build-timeout goes with --lang"},
        {"--lang go", "--lang go needs a FILE"},
        {"--lang go a.go x/.b.go",
         "x/.b.go: a FILE after the first keeps its name"},
        {"--lang go a.go b.go x/b.go", "two FILEs named b.go"},
        {"--lang go a.go b\\c.go", "b\\c.go: a FILE after the first"},
        {"--lang go 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17",
         "at most 16 FILEs"},
        {"--lang Go a.go", "--lang Go: not a language: NAME or NAME@VERSION"},
        {"--lang ../x a.go", "not a language"},
        {"--lang go --api-sock s a.go", "--api-sock takes its programs"},
        {"--lang go --api-sock s --json", "--api-sock takes its programs"},
        {"--lang go a.go --exec -- ls", "does not go with --lang"},
        {"--restore d", "needs --exec -- ARGV"},
        {"--restore d --kernel k --exec -- true", "drop --kernel, --initrd"},
        {"--restore d --mem 64 --exec -- true", "drop --kernel, --initrd"},
        {"--restore d --cpus 2 --exec -- true", "drop --kernel, --initrd"},
        {"--restore d --snapshot-out e --exec -- true", "do not go together"},
        {"--kernel k --initrd i --snapshot-out d --exec -- true",
         "drop --exec"},
        {"--kernel k --initrd i --snapshot-out d --net tap0",
         "not supported yet"},
        {"--restore d --vconsole unix:/tmp/v --exec -- true",
         "drop --vconsole"},
        {"--kernel k --initrd i --snapshot-out", "needs a value"},
        {"--lang go --restore d a.go", "--lang finds and makes its snapshots"},
        {"--kernel k --initrd i --no-snapshot",
         "--no-snapshot goes with --lang"},
        {"snapshot", "snapshot needs --lang LANG"},
        {"snapshot --lang go a.go", "snapshot: unexpected argument a.go"},
        {"snapshot --lang go --json", "takes only --mem"},
        {"snapshot --verify d --lang go", "takes nothing else"},
        {"snapshot --lang Go", "not a language"},
        {"--verify d", "--verify goes with `runvm snapshot`"},
        {"serve", "serve needs --api-sock PATH"},
        {"serve --api-sock s x", "serve: unexpected argument x"},
        {"serve --api-sock s --lang go", "serve takes --api-sock, --listen"},
        {"serve --api-sock s --api-fd 3", "serve takes --api-sock, --listen"},
        {"serve --api-sock s --langs go,,Py", "--langs: Py: not a language"},
        {"serve --api-sock s --langs ,", "name at least one language"},
        {"serve --api-sock s --langs "
         "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q",
         "16 languages at most"},
        {"serve --api-sock s --max-vms 0", "--max-vms 0: out of range"},
        {"serve --api-sock s --queue 0", "--queue 0: out of range"},
        {"serve --api-sock s --warm x", "--warm x: not a number"},
        {"--lang go --max-vms 2 a.go", "go with `runvm serve`"},
        {"--lang go --listen 8080 a.go", "go with `runvm serve`"},
        {"--lang go --api-fd 2", "--api-fd 2: out of range"},
        {"--lang go --api-fd 3 --api-sock s", "pick one"},
        {"--lang go --api-fd 3 a.go", "--api-fd takes its programs"},
        {"--kernel k --initrd i --api-fd 3", "--api-fd goes with --lang"},
        {"snapshot --lang go --api-fd 3", "takes only --mem"},
        {"snapshot --lang go --cgroup /c", "takes only --mem"},
        {"--lang go a.go --cgroup", "--cgroup needs a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_config c;
        char err[256];
        int ret = parse(&c, err, sizeof(err), cases[i].line);
        if (ret != -EINVAL || !strstr(err, cases[i].want))
            fail_msg("\"%s\": %d \"%s\", want \"%s\"", cases[i].line, ret, err,
                     cases[i].want);
    }
}

static void reparse_starts_afresh(void **state)
{
    (void)state;
    struct cli_config c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go a.go --json"), 0);
    assert_int_equal(parse(&c, err, sizeof(err), "--lang go b.go"), 0);
    assert_false(c.json);
    assert_int_equal(c.nfiles, 1);
    assert_string_equal(c.files[0], "b.go");
}

static void parse_mac(void **state)
{
    (void)state;
    uint8_t mac[6];
    assert_int_equal(cli_parse_mac("52:54:00:ab:CD:ef", mac), 0);
    assert_int_equal(mac[4], 0xcd);
    assert_int_equal(cli_parse_mac("52:54:00:ab:cd", mac), -EINVAL);
    assert_int_equal(cli_parse_mac("52:54:00:ab:cd:ef:", mac), -EINVAL);
    assert_int_equal(cli_parse_mac("01:00:5e:00:00:01", mac), -EINVAL);
    assert_int_equal(cli_parse_mac("zz:54:00:ab:cd:ef", mac), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_numbers_in_range),
        cmocka_unit_test(refuses_what_is_not_a_number),
        cmocka_unit_test(refuses_out_of_range),
        cmocka_unit_test(modes),
        cmocka_unit_test(bad_command_lines),
        cmocka_unit_test(reparse_starts_afresh),
        cmocka_unit_test(parse_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
