/* initramfs-builder: image (registry, OCI layout, docker archive, rootfs)
 * → in-memory tree → /init + /etc/runvm/lang.conf → cpio newc. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "initramfs-builder/cpio.h"
#include "initramfs-builder/image.h"
#include "initramfs-builder/layer.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/registry.h"
#include "initramfs-builder/tree.h"
#include "protocol/langconf.h"

#define BUILDER_VERSION "1"
#define MAX_AGENT       (64u << 20)

static void usage(FILE *f)
{
    fputs("usage: initramfs-builder --lang LANG [--from SOURCE] -o OUT\n"
          "         [--compress none|gzip|lz4] [--platform OS/ARCH[/VARIANT]]\n"
          "         [--agent PATH] [--lang-dir DIR] [--auth-file FILE] "
          "[--quiet]\n"
          "         [--set KEY=VALUE]... (adds to /etc/runvm/lang.conf)\n"
          "SOURCE: docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST]\n"
          "        oci:DIR[:TAG]   docker-archive:FILE   rootfs:TAR|DIR\n"
          "        (default: docker://IMAGE from the language config)\n"
          "--compress defaults from OUT's suffix (.gz, .lz4), else none.\n",
          f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The directory of this executable, for defaults next to it. */
static int exe_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0)
        return -ENOENT;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    return 0;
}

static int find_lang_conf(const char *lang_dir, const char *lang, char *out,
                          size_t len)
{
    char exe[PATH_MAX - 64];
    const char *dirs[3] = {lang_dir, getenv("RUNVM_LANG_DIR"), NULL};
    char fallback[PATH_MAX];
    if (!lang_dir && !dirs[1] && exe_dir(exe, sizeof(exe)) == 0) {
        /* build/bin/initramfs-builder → initramfs-builder/langs */
        snprintf(fallback, sizeof(fallback), "%s/../../initramfs-builder/langs",
                 exe);
        dirs[2] = fallback;
    }
    for (int i = 0; i < 3; i++) {
        if (!dirs[i])
            continue;
        snprintf(out, len, "%s/%s.conf", dirs[i], lang);
        if (access(out, R_OK) == 0 || i < 2)
            return 0;
    }
    snprintf(out, len, "initramfs-builder/langs/%s.conf", lang);
    return 0;
}

static int apply_source(struct tree *t, const char *from,
                        const struct image_opts *io, const char *auth_file)
{
    struct stat st;
    if (strncmp(from, "docker://", 9) == 0)
        return registry_apply(t, from + 9, io, auth_file);
    if (strncmp(from, "oci:", 4) == 0)
        return image_apply_oci_layout(t, from + 4, io);
    if (strncmp(from, "docker-archive:", 15) == 0)
        return image_apply_docker_archive(t, from + 15);
    if (strncmp(from, "rootfs:", 7) == 0) {
        const char *p = from + 7;
        if (stat(p, &st) < 0) {
            progress_error("%s: %s", p, strerror(errno));
            return -errno;
        }
        if (S_ISDIR(st.st_mode))
            return layer_apply_dir(t, p);
        return layer_apply_file(t, p, p);
    }
    progress_error("%s: unknown source kind — use docker://, oci:, "
                   "docker-archive: or rootfs:",
                   from);
    return -EINVAL;
}

static int valid_lang(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
            *s != '-' && *s != '_')
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"lang", required_argument, NULL, 'l'},
        {"from", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"compress", required_argument, NULL, 'c'},
        {"platform", required_argument, NULL, 'p'},
        {"agent", required_argument, NULL, 'a'},
        {"lang-dir", required_argument, NULL, 'L'},
        {"auth-file", required_argument, NULL, 'A'},
        {"set", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *lang = NULL, *from = NULL, *out = NULL, *compress = NULL;
    const char *agent = NULL, *lang_dir = NULL, *auth_file = NULL;
    struct image_opts io = {.platform = "linux/amd64"};
    const char *sets[16];
    int nsets = 0;
    int c;
    /* Layer tars carry UTF-8 names; libarchive converts through the locale,
     * so a UTF-8 one keeps them intact. */
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        setlocale(LC_CTYPE, "");
    while ((c = getopt_long(argc, argv, "l:f:o:c:p:a:L:A:s:qVh", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'l': lang = optarg; break;
        case 'f': from = optarg; break;
        case 'o': out = optarg; break;
        case 'c': compress = optarg; break;
        case 'p': io.platform = optarg; break;
        case 'a': agent = optarg; break;
        case 'L': lang_dir = optarg; break;
        case 'A': auth_file = optarg; break;
        case 's':
            if (nsets == 16) {
                progress_error("--set: at most 16");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'q': progress_set_quiet(1); break;
        case 'V': puts("initramfs-builder " BUILDER_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!lang || !out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!valid_lang(lang)) {
        progress_error("--lang %s: use lower-case letters, digits, - or _",
                       lang);
        return 2;
    }
    enum cpio_compress comp = CPIO_NONE;
    size_t olen = strlen(out);
    if (!compress)
        compress = olen > 3 && strcmp(out + olen - 3, ".gz") == 0    ? "gzip"
                   : olen > 4 && strcmp(out + olen - 4, ".lz4") == 0 ? "lz4"
                                                                     : "none";
    if (cpio_parse_compress(compress, &comp) != 0) {
        progress_error("--compress %s: use none, gzip or lz4", compress);
        return 2;
    }

    char conf_path[PATH_MAX], agent_buf[PATH_MAX], why[PATH_MAX + 200];
    struct langconf_kv lc;
    int found = find_lang_conf(lang_dir, lang, conf_path, sizeof(conf_path));
    if (found == 0) {
        found = langconf_kv_load(&lc, conf_path, why, sizeof(why));
        if (found != 0)
            progress_error("%s", why);
    }
    if (found != 0) {
        progress_error("no usable config for language %s (%s) — see "
                       "initramfs-builder/langs/ or pass --lang-dir",
                       lang, conf_path);
        return 1;
    }
    for (int i = 0; i < nsets; i++) {
        if (langconf_kv_set(&lc, sets[i]) != 0) {
            progress_error("--set %s: expected KEY=VALUE", sets[i]);
            langconf_kv_free(&lc);
            return 2;
        }
    }
    /* Split DROP before fetching anything, so that a bad glob line fails
     * in a second rather than after the download. */
    char **drops = NULL;
    size_t ndrops = 0;
    if (langconf_kv_words(&lc, "DROP", &drops, &ndrops, why, sizeof(why)) !=
        0) {
        progress_error("%s: %s", conf_path, why);
        langconf_kv_free(&lc);
        return 2;
    }
    char from_buf[1024];
    if (!from) {
        const char *img = langconf_kv_get(&lc, "IMAGE");
        if (!img) {
            progress_error("%s: no IMAGE= and no --from", conf_path);
            langconf_free_words(drops);
            langconf_kv_free(&lc);
            return 2;
        }
        snprintf(from_buf, sizeof(from_buf), "docker://%s", img);
        from = from_buf;
    }
    if (!agent) {
        char dir[PATH_MAX - 32];
        if (exe_dir(dir, sizeof(dir)) == 0) {
            snprintf(agent_buf, sizeof(agent_buf), "%s/runvm-agent", dir);
            agent = agent_buf;
        } else {
            agent = "build/bin/runvm-agent";
        }
    }
    char *agent_bytes = NULL;
    size_t agent_len = 0;
    int err = image_read_file(agent, &agent_bytes, &agent_len, MAX_AGENT);
    if (err) {
        progress_error("agent %s: %s — build it (make) or pass --agent", agent,
                       strerror(-err));
        langconf_free_words(drops);
        langconf_kv_free(&lc);
        return 1;
    }

    double t0 = now_s();
    struct tree t;
    struct cpio_stats st;
    char *runtime = langconf_kv_render_runtime(&lc);
    if (!runtime) {
        err = -ENOMEM;
        progress_error("rendering /etc/runvm/lang.conf: %s", strerror(-err));
        goto out;
    }
    err = tree_init(&t, NULL);
    if (err) {
        progress_error("spool file: %s — set TMPDIR to a writable directory",
                       strerror(-err));
        goto out;
    }
    progress("source: %s (lang %s, platform %s)", from, lang, io.platform);
    err = apply_source(&t, from, &io, auth_file);
    if (err)
        goto out_tree;
    double t1 = now_s();
    unsigned long dropped = tree_drop_globs(&t, drops, ndrops);
    progress("unpack: %.1f s, %zu entries kept, %lu dropped by DROP globs, "
             "%lu unsafe and %lu device entries skipped, %lu whiteouts",
             t1 - t0, t.nlive, dropped, t.skipped_unsafe, t.skipped_devices,
             t.whiteouts);
    err = tree_put_file(&t, "init", 0755, agent_bytes, agent_len);
    if (!err)
        err = tree_put_file(&t, "etc/runvm/lang.conf", 0644, runtime,
                            strlen(runtime));
    if (err) {
        progress_error("adding /init and /etc/runvm/lang.conf: %s (does the "
                       "image have a non-directory /etc or /etc/runvm?)",
                       strerror(-err));
        goto out_tree;
    }
    progress("compress: writing %s (%s)", out, compress);
    err = cpio_write_tree(&t, out, comp, &st);
    if (!err)
        progress("done: %s: %llu entries, %.1f MiB cpio, %.1f MiB on disk, "
                 "%.1f s",
                 out, (unsigned long long)st.entries,
                 (double)st.raw_bytes / 1048576.0,
                 (double)st.compressed_bytes / 1048576.0, now_s() - t0);
out_tree:
    tree_free(&t);
out:
    langconf_free_words(drops);
    free(runtime);
    free(agent_bytes);
    langconf_kv_free(&lc);
    return err ? 1 : 0;
}
