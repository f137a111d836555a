/* initramfs-builder: image (registry, OCI layout, docker archive, rootfs)
 * → in-memory tree → /init + /etc/runvm/lang.conf → cpio newc. */
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
#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"
#include "initramfs-builder/registry.h"
#include "initramfs-builder/tree.h"
#include "protocol/langconf.h"
#include "protocol/version.h"

#define BUILDER_VERSION "1"
#define MAX_AGENT       (64u << 20)

static void usage(FILE *f)
{
    fputs("usage: initramfs-builder --lang LANG[@VERSION] [--from SOURCE] "
          "-o OUT\n"
          "       initramfs-builder --lang LANG[@VERSION] --print-conf\n"
          "         [--compress none|gzip|lz4] [--platform OS/ARCH[/VARIANT]]\n"
          "         [--agent PATH] [--lang-dir DIR] [--auth-file FILE] "
          "[--quiet]\n"
          "         [--set KEY=VALUE]... (adds to /etc/runvm/lang.conf)\n"
          "         [--max-blob-size SIZE] [--max-unpacked-size SIZE]\n"
          "         [--max-entries N]\n"
          "SOURCE: docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST]\n"
          "        oci:DIR[:TAG]   docker-archive:FILE   rootfs:TAR|DIR\n"
          "        (default: docker://IMAGE from the language config)\n"
          "--compress defaults from OUT's suffix (.gz, .lz4), else none.\n"
          "LANG is LANG-DIR/LANG/DEFAULT.conf (DEFAULT= of its lang.conf),\n"
          "LANG@VERSION is LANG-DIR/LANG/VERSION.conf; --print-conf prints\n"
          "it with its INCLUDE lines resolved (docs/lang-conf.md).\n"
          "Caps on what an image may take; the build fails naming the one\n"
          "it meets. SIZE is bytes or a number with K, M, G or T (KiB...):\n"
          "  --max-blob-size SIZE      one layer blob, pulled or read, and\n"
          "      never more than its manifest declares (default 4G, or\n"
          "      $RUNVM_BUILDER_MAX_BLOB_SIZE)\n"
          "  --max-unpacked-size SIZE  file contents of all layers together\n"
          "      (default 8G, or $RUNVM_BUILDER_MAX_UNPACKED_SIZE)\n"
          "  --max-entries N           files, directories and links at once\n"
          "      (default 1000000, or $RUNVM_BUILDER_MAX_ENTRIES)\n"
          "Layers are tars, plain or compressed with gzip, zstd, xz or\n"
          "bzip2; a compression that needs an external program is refused.\n",
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

/* The directory of language configs: --lang-dir, $RUNVM_LANG_DIR, or the
 * source tree's beside build/bin/. */
static void lang_dir_of(const char *lang_dir, char *out, size_t len)
{
    char exe[PATH_MAX - 400];
    const char *env = getenv("RUNVM_LANG_DIR");
    if (lang_dir || (env && *env))
        snprintf(out, len, "%.3000s", lang_dir ? lang_dir : env);
    else if (exe_dir(exe, sizeof(exe)) == 0)
        /* build/bin/initramfs-builder → initramfs-builder/langs */
        snprintf(out, len, "%s/../../initramfs-builder/langs", exe);
    else
        snprintf(out, len, "initramfs-builder/langs");
}

/* Loads the config of spec, NAME or NAME@VERSION: DIR/NAME/VERSION.conf,
 * VERSION defaulting to the DEFAULT= of DIR/NAME/lang.conf. Checks that
 * it names itself (LANG=NAME, VERSION=VERSION). 0, or 1 after saying
 * why. */
static int load_lang_conf(const char *dir, const struct lang_spec *spec,
                          struct langconf_kv *lc, char *path, size_t len)
{
    char why[PATH_MAX + 200], version[LANG_VERSION_MAX + 1];
    const char *name = spec->name;
    snprintf(version, sizeof(version), "%s", spec->version);
    if (!version[0]) {
        struct langconf_kv common;
        snprintf(path, len, "%s/%s/lang.conf", dir, name);
        if (langconf_kv_load(&common, path, why, sizeof(why)) != 0) {
            progress_error("%s — no such language in %s (or pass "
                           "--lang-dir)",
                           why, dir);
            return 1;
        }
        const char *def = langconf_kv_get(&common, "DEFAULT");
        bool ok = def && version_valid(def, LANG_VERSION_MAX);
        snprintf(version, sizeof(version), "%s", ok ? def : "");
        langconf_kv_free(&common);
        if (!ok) {
            progress_error("%s: no DEFAULT=VERSION naming the default "
                           "version",
                           path);
            return 1;
        }
    }
    snprintf(path, len, "%s/%s/%s.conf", dir, name, version);
    if (langconf_kv_load(lc, path, why, sizeof(why)) != 0) {
        progress_error("%s — %s has no version %s (see %s/%s/)", why, name,
                       version, dir, name);
        return 1;
    }
    const char *l = langconf_kv_get(lc, "LANG");
    const char *v = langconf_kv_get(lc, "VERSION");
    if (!l || strcmp(l, name) != 0 || !v || strcmp(v, version) != 0) {
        progress_error("%s: must say LANG=%s and VERSION=%s (its directory "
                       "and file name), not LANG=%s VERSION=%s",
                       path, name, version, l ? l : "", v ? v : "");
        langconf_kv_free(lc);
        return 1;
    }
    return 0;
}

/* The toolchain the image holds (TOOLCHAIN, what VERSION_CMD printed)
 * must be the config's VERSION. 0, or 1 after saying why. */
static int check_toolchain(const struct langconf_kv *lc, const char *path)
{
    const char *t = langconf_kv_get(lc, "TOOLCHAIN");
    const char *v = langconf_kv_get(lc, "VERSION");
    char found[32];
    if (!t || !v)
        return 0; /* not known here: runvm checks HELLO's */
    if (version_of_toolchain(t, found, sizeof(found)) &&
        version_match(v, found))
        return 0;
    progress_error("%s: the toolchain installed is \"%s\", not version %s: "
                   "fix PACKAGES, SUITE or IMAGE",
                   path, t, v);
    return 1;
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
        return image_apply_docker_archive(t, from + 15, io);
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
        {"print-conf", no_argument, NULL, 'P'},
        {"max-blob-size", required_argument, NULL, 'B'},
        {"max-unpacked-size", required_argument, NULL, 'U'},
        {"max-entries", required_argument, NULL, 'E'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *lang = NULL, *from = NULL, *out = NULL, *compress = NULL;
    const char *agent = NULL, *lang_dir = NULL, *auth_file = NULL;
    struct image_opts io = {.platform = "linux/amd64"};
    struct builder_limits caps;
    char why_caps[256];
    const char *sets[16];
    int nsets = 0;
    bool print_conf = false;
    int c;
    limits_default(&caps);
    if (limits_from_env(&caps, why_caps, sizeof(why_caps)) != 0) {
        progress_error("%s", why_caps);
        return 2;
    }
    /* Layer tars carry UTF-8 names; libarchive converts through the locale,
     * so a UTF-8 one keeps them intact. */
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        setlocale(LC_CTYPE, "");
    while ((c = getopt_long(argc, argv, "l:f:o:c:p:a:L:A:s:qPVhB:U:E:", opts,
                            NULL)) != -1) {
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
        case 'B':
        case 'U':
            if (limits_parse_size(optarg, c == 'B' ? &caps.max_blob
                                                   : &caps.max_unpacked)) {
                progress_error("--%s %s: expected a size such as 512M or 4G",
                               c == 'B' ? "max-blob-size" : "max-unpacked-size",
                               optarg);
                return 2;
            }
            break;
        case 'E':
            if (limits_parse_count(optarg, &caps.max_entries)) {
                progress_error("--max-entries %s: expected a positive number",
                               optarg);
                return 2;
            }
            break;
        case 'q': progress_set_quiet(1); break;
        case 'P': print_conf = true; break;
        case 'V': puts("initramfs-builder " BUILDER_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!lang || (!out && !print_conf) || optind != argc) {
        usage(stderr);
        return 2;
    }
    /* NAME or NAME@VERSION (protocol/version.h), VERSION a real one: the
     * builder makes one version's image, never "any". */
    struct lang_spec spec;
    if (!lang_spec_parse(lang, strlen(lang), &spec) ||
        strcmp(spec.version, "*") == 0) {
        progress_error("--lang %s: NAME or NAME@VERSION: lower-case letters, "
                       "digits, -, _ or +, then digits and dots",
                       lang);
        return 2;
    }
    enum cpio_compress comp = CPIO_NONE;
    size_t olen = out ? strlen(out) : 0;
    if (!compress)
        compress = olen > 3 && strcmp(out + olen - 3, ".gz") == 0    ? "gzip"
                   : olen > 4 && strcmp(out + olen - 4, ".lz4") == 0 ? "lz4"
                                                                     : "none";
    if (cpio_parse_compress(compress, &comp) != 0) {
        progress_error("--compress %s: use none, gzip or lz4", compress);
        return 2;
    }

    char conf_path[PATH_MAX], agent_buf[PATH_MAX], why[PATH_MAX + 200];
    char langs[PATH_MAX - 200];
    struct langconf_kv lc;
    lang_dir_of(lang_dir, langs, sizeof(langs));
    if (load_lang_conf(langs, &spec, &lc, conf_path, sizeof(conf_path)) != 0)
        return 1;
    for (int i = 0; i < nsets; i++) {
        if (langconf_kv_set(&lc, sets[i]) != 0) {
            progress_error("--set %s: expected KEY=VALUE", sets[i]);
            langconf_kv_free(&lc);
            return 2;
        }
    }
    if (print_conf) {
        /* The whole config, INCLUDEs resolved: what make installs beside
         * the images and what mkimage.sh reads. */
        for (size_t i = 0; i < lc.n; i++)
            printf("%s=%s\n", lc.entries[i].key, lc.entries[i].value);
        langconf_kv_free(&lc);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (check_toolchain(&lc, conf_path) != 0) {
        langconf_kv_free(&lc);
        return 1;
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
    io.max_blob = caps.max_blob;
    t.max_bytes = caps.max_unpacked;
    t.max_entries = caps.max_entries;
    progress("source: %s (lang %s, platform %s)", from, lang, io.platform);
    err = apply_source(&t, from, &io, auth_file);
    if (err)
        goto out_tree;
    double t1 = now_s();
    unsigned long dropped = tree_drop_globs(&t, drops, ndrops);
    progress("unpack: %.1f s, %zu entries kept, %lu dropped by DROP globs, "
             "%lu unsafe and %lu device entries skipped, %lu whiteouts, "
             "setuid/setgid cleared on %lu entries",
             t1 - t0, t.nlive, dropped, t.skipped_unsafe, t.skipped_devices,
             t.whiteouts, t.cleared_setid);
    err = tree_put_file(&t, "init", 0755, agent_bytes, agent_len);
    if (!err)
        err = tree_put_file(&t, "etc/runvm/lang.conf", 0644, runtime,
                            strlen(runtime));
    if (err == -EDQUOT) {
        limits_tree_cap_text(&t, why, sizeof(why));
        progress_error("adding /init and /etc/runvm/lang.conf: %s", why);
        goto out_tree;
    }
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
