/* Registry client. Flow (distribution spec, "Pulling an image" and the
 * token authentication spec): GET /v2/REPO/manifests/REF with every
 * manifest media type in Accept; on 401 read WWW-Authenticate: for Bearer,
 * fetch a token from realm?service=&scope=repository:REPO:pull (with basic
 * credentials when we have them) and retry; for Basic, retry with the
 * credentials. Blobs land in $RUNVM_CACHE/blobs/sha256/HEX after their
 * digest checks out. */
#include "initramfs-builder/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "initramfs-builder/digest.h"
#include "initramfs-builder/limits.h"
#include "initramfs-builder/progress.h"

#define ACCEPT_MANIFESTS                                                       \
    "Accept: application/vnd.oci.image.index.v1+json, "                        \
    "application/vnd.docker.distribution.manifest.list.v2+json, "              \
    "application/vnd.oci.image.manifest.v1+json, "                             \
    "application/vnd.docker.distribution.manifest.v2+json"
#define MAX_BODY (4u << 20)

struct registry {
    struct registry_ref ref;
    const char *name; /* for messages */
    char *user, *pass;
    char *bearer;
    char *cache_dir;   /* .../blobs/sha256 */
    uint64_t max_blob; /* 0: no cap */
    CURL *curl;
};

int registry_host_is_loopback(const char *host)
{
    char h[256];
    snprintf(h, sizeof(h), "%s", host);
    if (h[0] == '[') { /* [::1]:5000 */
        char *end = strchr(h, ']');
        if (end)
            *end = '\0';
        return strcmp(h + 1, "::1") == 0;
    }
    char *colon = strchr(h, ':');
    if (colon && !strchr(colon + 1, ':'))
        *colon = '\0';
    if (strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0)
        return 1;
    unsigned a, b, c, d;
    char extra;
    return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 &&
           a == 127 && b < 256 && c < 256 && d < 256;
}

int registry_parse_ref(const char *s, struct registry_ref *r)
{
    memset(r, 0, sizeof(*r));
    const char *slash = strchr(s, '/');
    const char *rest = s;
    if (slash) {
        size_t n = (size_t)(slash - s);
        if ((memchr(s, '.', n) || memchr(s, ':', n) ||
             (n == 9 && strncmp(s, "localhost", 9) == 0)) &&
            n < sizeof(r->host)) {
            memcpy(r->host, s, n);
            rest = slash + 1;
        }
    }
    if (!r->host[0])
        strcpy(r->host, "docker.io");
    if (strcmp(r->host, "docker.io") == 0 ||
        strcmp(r->host, "index.docker.io") == 0)
        strcpy(r->api_host, "registry-1.docker.io");
    else
        strcpy(r->api_host, r->host);

    char name[sizeof(r->repo) - 8];
    const char *at = strchr(rest, '@');
    size_t nlen;
    if (at) {
        if (!digest_valid(at + 1))
            return -EINVAL;
        snprintf(r->ref, sizeof(r->ref), "%s", at + 1);
        nlen = (size_t)(at - rest);
    } else {
        const char *colon = strrchr(rest, ':');
        if (colon && strchr(colon, '/'))
            colon = NULL;
        nlen = colon ? (size_t)(colon - rest) : strlen(rest);
        snprintf(r->ref, sizeof(r->ref), "%s", colon ? colon + 1 : "latest");
        if (!r->ref[0])
            return -EINVAL;
    }
    if (nlen == 0 || nlen >= sizeof(name))
        return -EINVAL;
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    /* Repository names: lower-case alphanumerics and separators; anything
     * else (spaces, '?', '#') would change the URL's meaning. */
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            !strchr("._-/", *p))
            return -EINVAL;
    for (const char *p = r->ref; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-:", *p))
            return -EINVAL;
    if (strcmp(r->api_host, "registry-1.docker.io") == 0 && !strchr(name, '/'))
        snprintf(r->repo, sizeof(r->repo), "library/%s", name);
    else
        snprintf(r->repo, sizeof(r->repo), "%s", name);
    r->plain_http = registry_host_is_loopback(r->host);
    return 0;
}

/* ---- credentials --------------------------------------------------------*/

static int load_auth(struct registry *g, const char *auth_file)
{
    char path[4096];
    const char *home = getenv("HOME");
    int explicit = auth_file != NULL;
    if (!auth_file)
        auth_file = getenv("REGISTRY_AUTH_FILE");
    if (!auth_file && home) {
        snprintf(path, sizeof(path), "%s/.docker/config.json", home);
        auth_file = path;
    }
    if (!auth_file)
        return 0;
    json_error_t jerr;
    json_t *root = json_load_file(auth_file, 0, &jerr);
    if (!root) {
        if (!explicit && access(auth_file, F_OK) != 0)
            return 0;
        progress_error("%s: %s — expected docker config.json format "
                       "({\"auths\": {\"REGISTRY\": {\"auth\": "
                       "\"base64(user:password)\"}}})",
                       auth_file, jerr.text);
        return -EINVAL;
    }
    json_t *auths = json_object_get(root, "auths"), *v;
    const char *key;
    int err = 0;
    json_object_foreach(auths, key, v)
    {
        /* Keys are "host", "https://host" or "https://host/v1/". */
        const char *k = strstr(key, "://") ? strstr(key, "://") + 3 : key;
        size_t klen = strcspn(k, "/");
        int hub = strcmp(g->ref.host, "docker.io") == 0 &&
                  ((klen == 15 && strncmp(k, "index.docker.io", 15) == 0) ||
                   (klen == 9 && strncmp(k, "docker.io", 9) == 0));
        if (!hub &&
            (klen != strlen(g->ref.host) || strncmp(k, g->ref.host, klen) != 0))
            continue;
        json_t *a = json_object_get(v, "auth");
        const char *b64 = json_string_value(a);
        if (!b64)
            continue;
        size_t blen = strlen(b64);
        unsigned char *dec = calloc(1, blen + 4);
        if (!dec) {
            err = -ENOMEM;
            break;
        }
        int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)blen);
        char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
        if (!colon) {
            progress_error("%s: auth for %s is not base64(user:password)",
                           auth_file, key);
            free(dec);
            err = -EINVAL;
            break;
        }
        /* EVP_DecodeBlock counts base64 padding as zero bytes. */
        *colon = '\0';
        g->user = strdup((char *)dec);
        g->pass = strdup(colon + 1);
        free(dec);
        break;
    }
    json_decref(root);
    return err;
}

/* ---- HTTP ---------------------------------------------------------------*/

struct response {
    const char *label; /* blob downloads: progress lines name it */
    double next_report;
    long status;
    char *body;
    size_t len;
    int too_big;
    FILE *file; /* blobs go straight to a file */
    EVP_MD_CTX *md;
    uint64_t file_max, file_len; /* what the file may take, has taken */
    char *www_auth;
    char *content_type;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct response *r = opaque;
    size_t n = size * nmemb;
    if (r->file) {
        /* With CURLOPT_FAILONERROR only a successful body reaches here.
         * A body longer than its cap stops here, whatever Content-Length
         * said (or did not). */
        if (n > r->file_max - r->file_len) {
            r->too_big = 1;
            return 0;
        }
        r->file_len += n;
        if (fwrite(data, 1, n, r->file) != n)
            return 0; /* curl reports CURLE_WRITE_ERROR; errno kept */
        EVP_DigestUpdate(r->md, data, n);
        return n;
    }
    if (r->len + n > MAX_BODY) {
        r->too_big = 1;
        return 0;
    }
    char *b = realloc(r->body, r->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, data, n);
    r->body = b;
    r->len += n;
    b[r->len] = '\0';
    return n;
}

/* Progress every 5 s for long blob downloads. */
static int on_progress(void *opaque, curl_off_t total, curl_off_t now,
                       curl_off_t ut, curl_off_t un)
{
    struct response *r = opaque;
    struct timespec ts;
    (void)ut;
    (void)un;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (r->next_report == 0) {
        r->next_report = t + 5;
    } else if (t >= r->next_report && r->label) {
        r->next_report = t + 5;
        progress("pull: %.19s %.1f/%.1f MiB", r->label, (double)now / 1048576.0,
                 (double)total / 1048576.0);
    }
    return 0;
}

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return strndup(v, (size_t)(end - v));
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct response *r = opaque;
    size_t n = size * nmemb;
    char *v;
    /* A new status line (after a redirect) resets what we collected. */
    if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
        free(r->www_auth);
        free(r->content_type);
        r->www_auth = r->content_type = NULL;
    }
    if ((v = header_value(data, n, "WWW-Authenticate"))) {
        free(r->www_auth);
        r->www_auth = v;
    } else if ((v = header_value(data, n, "Content-Type"))) {
        free(r->content_type);
        r->content_type = v;
    }
    return n;
}

static void response_free(struct response *r)
{
    free(r->body);
    free(r->www_auth);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
}

/* One GET. With `file`, a 2xx body of at most `file_max` bytes is written
 * there (and hashed into `md`); otherwise it is kept in r->body. Returns 0
 * when the request completed (any status), -EFBIG for a body past
 * `file_max`, or -errno for other transport errors. */
static int http_get(struct registry *g, const char *url, const char *accept,
                    int send_auth, FILE *file, EVP_MD_CTX *md,
                    uint64_t file_max, struct response *r)
{
    CURL *c = g->curl;
    struct curl_slist *h = NULL;
    char auth[4096];
    memset(r, 0, sizeof(*r));
    r->file = file;
    r->md = md;
    r->file_max = file_max;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    /* Plain HTTP only for loopback registries, as Docker does; blob
     * redirects to a CDN must stay on HTTPS. */
    const char *protos = g->ref.plain_http ? "http,https" : "https";
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protos);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protos);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "runvm-initramfs-builder/1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* Abort a transfer stalled below 1 KiB/s for a minute. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (accept)
        h = curl_slist_append(h, accept);
    if (send_auth && g->bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g->bearer);
        h = curl_slist_append(h, auth);
    } else if (send_auth && g->user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, g->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, g->pass);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    /* An error page must never land in a blob file. */
    if (file) {
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        r->label = url + strlen(url) - DIGEST_STR_LEN;
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
        /* Refuses a Content-Length past the cap before any byte. */
        if (file_max <= (uint64_t)INT64_MAX)
            curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                             (curl_off_t)file_max);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    if (rc == CURLE_HTTP_RETURNED_ERROR)
        return 0; /* status says what */
    if (file && (r->too_big || rc == CURLE_FILESIZE_EXCEEDED))
        return -EFBIG;
    if (rc == CURLE_WRITE_ERROR && file)
        return errno ? -errno : -EIO;
    if (rc != CURLE_OK) {
        progress_error("%s: %s — check the registry address and the "
                       "network",
                       url, curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
    }
    return 0;
}

/* Extracts key="value" from a WWW-Authenticate challenge. */
static char *challenge_param(const char *ch, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = ch; (p = strcasestr(p, key)); p += kl) {
        if (p != ch && p[-1] != ' ' && p[-1] != ',')
            continue;
        if (p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        if (*v == '"') {
            const char *end = strchr(v + 1, '"');
            return end ? strndup(v + 1, (size_t)(end - v - 1)) : NULL;
        }
        return strndup(v, strcspn(v, ", "));
    }
    return NULL;
}

/* Answers a 401 challenge; returns 0 when a retry may succeed. */
static int authenticate(struct registry *g, const char *challenge)
{
    if (!challenge) {
        progress_error("%s: 401 without a WWW-Authenticate challenge", g->name);
        return -EACCES;
    }
    if (strncasecmp(challenge, "Basic", 5) == 0) {
        if (!g->user) {
            progress_error("%s: the registry wants a password — add it to "
                           "an --auth-file (docker config.json)",
                           g->name);
            return -EACCES;
        }
        return 0;
    }
    if (strncasecmp(challenge, "Bearer", 6) != 0) {
        progress_error("%s: unsupported auth challenge: %s", g->name,
                       challenge);
        return -EACCES;
    }
    char *realm = challenge_param(challenge, "realm");
    char *service = challenge_param(challenge, "service");
    char *scope = challenge_param(challenge, "scope");
    int err = -EACCES;
    if (!realm) {
        progress_error("%s: bearer challenge without realm", g->name);
        goto out;
    }
    CURL *c = g->curl;
    char *es = service ? curl_easy_escape(c, service, 0) : NULL;
    char def_scope[700];
    snprintf(def_scope, sizeof(def_scope), "repository:%s:pull", g->ref.repo);
    char *esc = curl_easy_escape(c, scope ? scope : def_scope, 0);
    char *url = NULL;
    if (asprintf(&url, "%s%s%s%s&scope=%s", realm,
                 strchr(realm, '?') ? "&" : "?", es ? "service=" : "",
                 es ? es : "", esc) < 0)
        url = NULL;
    curl_free(es);
    curl_free(esc);
    if (!url) {
        err = -ENOMEM;
        goto out;
    }
    /* The token endpoint may be another host; HTTPS unless loopback. */
    struct response r;
    char *saved = g->bearer;
    g->bearer = NULL;
    err = http_get(g, url, NULL, g->user != NULL, NULL, NULL, 0, &r);
    g->bearer = saved;
    free(url);
    if (err)
        goto out;
    if (r.status == 401 || r.status == 403) {
        progress_error("%s: authentication failed at %s (HTTP %ld) — check "
                       "the credentials in your --auth-file",
                       g->name, realm, r.status);
        err = -EACCES;
    } else if (r.status != 200) {
        progress_error("%s: token server %s answered HTTP %ld", g->name, realm,
                       r.status);
        err = -EACCES;
    } else {
        json_t *j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (!tok)
            tok = json_string_value(json_object_get(j, "access_token"));
        if (tok) {
            free(g->bearer);
            g->bearer = strdup(tok);
            err = g->bearer ? 0 : -ENOMEM;
        } else {
            progress_error("%s: token server returned no token", g->name);
            err = -EACCES;
        }
        json_decref(j);
    }
    response_free(&r);
out:
    free(realm);
    free(service);
    free(scope);
    return err;
}

static void base_url(const struct registry *g, char *out, size_t len)
{
    snprintf(out, len, "%s://%s/v2/%s", g->ref.plain_http ? "http" : "https",
             g->ref.api_host, g->ref.repo);
}

static int get_manifest(void *ctx, const char *ref, char **buf, size_t *len,
                        char **media)
{
    struct registry *g = ctx;
    char url[2048];
    struct response r;
    int err;
    base_url(g, url, sizeof(url));
    size_t n = strlen(url);
    snprintf(url + n, sizeof(url) - n, "/manifests/%s", ref);
    for (int attempt = 0;; attempt++) {
        err = http_get(g, url, ACCEPT_MANIFESTS, 1, NULL, NULL, 0, &r);
        if (err)
            return err;
        if (r.status != 401 || attempt == 1)
            break;
        err = authenticate(g, r.www_auth);
        response_free(&r);
        if (err)
            return err;
    }
    if (r.status == 200) {
        *buf = r.body;
        *len = r.len;
        *media = r.content_type;
        r.body = r.content_type = NULL;
        response_free(&r);
        return 0;
    }
    if (r.status == 404)
        progress_error("%s: manifest %s not found (HTTP 404) — no such "
                       "repository or tag",
                       g->name, ref);
    else if (r.status == 401 || r.status == 403)
        progress_error("%s: access denied (HTTP %ld) — the image is "
                       "private or missing; pass --auth-file",
                       g->name, r.status);
    else if (r.too_big)
        progress_error("%s: manifest larger than %u bytes", g->name, MAX_BODY);
    else
        progress_error("%s: manifest %s: HTTP %ld", g->name, ref, r.status);
    err = r.status == 404                      ? -ENOENT
          : r.status == 401 || r.status == 403 ? -EACCES
                                               : -EIO;
    response_free(&r);
    return err;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Says why a blob download stopped at `max` bytes. */
static void report_too_big(const struct registry *g, const char *digest,
                           int64_t size, uint64_t max)
{
    char cap[32];
    if (size >= 0 && (uint64_t)size == max) {
        progress_error("%s: blob %s: the registry sent more than the %lld "
                       "bytes its descriptor declares — refused",
                       g->name, digest, (long long)size);
        return;
    }
    limits_format_size(max, cap, sizeof(cap));
    progress_error("%s: blob %s: more than %s, the cap per blob (raise it "
                   "with " LIMITS_BLOB_HOW ")",
                   g->name, digest, cap);
}

static int get_blob(void *ctx, const char *digest, int64_t size, char **path)
{
    struct registry *g = ctx;
    char *tmp = NULL;
    int err;
    /* The most bytes this blob may take: the descriptor's size, within
     * the cap. */
    uint64_t max = g->max_blob ? g->max_blob : UINT64_MAX;
    if (size >= 0 && (uint64_t)size < max)
        max = (uint64_t)size;
    if (asprintf(path, "%s/%s", g->cache_dir, digest + 7) < 0)
        return -ENOMEM;
    /* A cached blob is trusted only after its digest checks out again;
     * its size first, which costs no hashing. */
    char got[DIGEST_STR_LEN + 1];
    struct stat cached;
    if (stat(*path, &cached) == 0 && (uint64_t)cached.st_size <= max &&
        (size < 0 || cached.st_size == size) && digest_file(*path, got) == 0 &&
        strcmp(got, digest) == 0) {
        progress("pull: %.19s cached", digest);
        return 0;
    }
    if (asprintf(&tmp, "%s.part.%d", *path, (int)getpid()) < 0) {
        err = -ENOMEM;
        goto fail;
    }
    char url[2048];
    base_url(g, url, sizeof(url));
    size_t n = strlen(url);
    snprintf(url + n, sizeof(url) - n, "/blobs/%s", digest);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int attempt = 0;; attempt++) {
        FILE *f = fopen(tmp, "we");
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!f || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
            err = f ? -ENOMEM : -errno;
            progress_error("%s: %s", tmp, strerror(-err));
            if (f)
                fclose(f);
            EVP_MD_CTX_free(md);
            goto fail;
        }
        struct response r;
        errno = 0;
        err = http_get(g, url, NULL, 1, f, md, max, &r);
        if (fclose(f) != 0 && !err)
            err = -errno;
        unsigned char mdv[32];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(md, mdv, &mdlen);
        EVP_MD_CTX_free(md);
        if (err) {
            response_free(&r);
            if (err == -EFBIG)
                report_too_big(g, digest, size, max);
            else
                progress_error("pull: %.19s: writing %s: %s%s", digest, tmp,
                               strerror(-err),
                               err == -ENOSPC ? " — disk full: free space "
                                                "under $RUNVM_CACHE"
                                              : "");
            goto fail;
        }
        if (r.status == 401 && attempt == 0) {
            response_free(&r);
            /* FAILONERROR hides the challenge; ask for it again. */
            err = http_get(g, url, NULL, 0, NULL, NULL, 0, &r);
            char *ch = r.www_auth ? strdup(r.www_auth) : NULL;
            response_free(&r);
            if (!err)
                err = authenticate(g, ch);
            free(ch);
            if (err)
                goto fail;
            continue;
        }
        long status = r.status;
        response_free(&r);
        if (status != 200) {
            progress_error("%s: blob %s: HTTP %ld%s", g->name, digest, status,
                           status == 404 ? " — blob missing from the "
                                           "registry"
                                         : "");
            err = status == 404 ? -ENOENT : -EIO;
            goto fail;
        }
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    err = digest_check_file(tmp, digest, g->name);
    if (err)
        goto fail;
    struct stat st;
    if (stat(tmp, &st) == 0 && size >= 0 && st.st_size != size) {
        progress_error("%s: blob %s is %lld bytes, descriptor says %lld",
                       g->name, digest, (long long)st.st_size, (long long)size);
        err = -EBADMSG;
        goto fail;
    }
    if (rename(tmp, *path) < 0) {
        err = -errno;
        goto fail;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    progress("pull: %.19s %.1f MiB in %.1f s, digest ok", digest,
             (double)st.st_size / 1048576.0, secs);
    free(tmp);
    return 0;
fail:
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(*path);
    *path = NULL;
    return err;
}

int registry_apply(struct tree *t, const char *refstr,
                   const struct image_opts *o, const char *auth_file)
{
    struct registry g;
    char name[1024];
    int err;
    memset(&g, 0, sizeof(g));
    snprintf(name, sizeof(name), "docker://%s", refstr);
    g.name = name;
    g.max_blob = o->max_blob;
    if (registry_parse_ref(refstr, &g.ref) != 0) {
        progress_error("%s: not an image reference "
                       "([REGISTRY/]REPO[:TAG|@sha256:DIGEST])",
                       name);
        return -EINVAL;
    }
    err = load_auth(&g, auth_file);
    if (err)
        return err;
    const char *cache = getenv("RUNVM_CACHE");
    const char *home = getenv("HOME");
    if (cache && *cache)
        err = asprintf(&g.cache_dir, "%s/blobs/sha256", cache);
    else
        err = asprintf(&g.cache_dir, "%s/.cache/runvm/blobs/sha256",
                       home ? home : "/tmp");
    if (err < 0) {
        g.cache_dir = NULL;
        err = -ENOMEM;
        goto out;
    }
    err = mkdir_p(g.cache_dir);
    if (err) {
        progress_error("%s: %s — set RUNVM_CACHE to a writable directory",
                       g.cache_dir, strerror(-err));
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g.curl = curl_easy_init();
    if (!g.curl) {
        err = -ENOMEM;
        goto out;
    }
    progress("pull: %s://%s/%s %s", g.ref.plain_http ? "http" : "https",
             g.ref.api_host, g.ref.repo, g.ref.ref);
    struct image_store s = {get_manifest, get_blob, &g, name};
    err = image_apply(t, &s, g.ref.ref, o);
out:
    if (g.curl)
        curl_easy_cleanup(g.curl);
    free(g.cache_dir);
    free(g.user);
    free(g.pass);
    free(g.bearer);
    return err;
}
