/* Dotted version numbers ("1.24", "3.11.2"), as the language versions of
 * images (docs/lang-conf.md) and the agent's own version use them. Pure
 * functions: shared by runvm (choosing an image, checking the agent's
 * HELLO) and the image builder (checking the toolchain it installed). */
#ifndef RUNVM_VERSION_H
#define RUNVM_VERSION_H

#include <stdbool.h>
#include <stddef.h>

/* Compares dotted version numbers ("0.10.1" > "0.9"); a missing part is 0,
 * what follows a part's digits is ignored. <0, 0 or >0. */
int version_cmp(const char *a, const char *b);

/* True when want names version: equal, or a prefix of it that ends on a
 * dot boundary ("1.24" matches "1.24" and "1.24.3", not "1.2" nor
 * "1.240"; "3" matches "3.13"). "*" matches any version. An empty or
 * malformed want (anything but digits separated by single dots) matches
 * nothing. */
bool version_match(const char *want, const char *version);

/* True for a well-formed version: digits separated by single dots, at
 * most max bytes long. */
bool version_valid(const char *s, size_t max);

/* A language as people name it (--lang, an API request's "lang", the
 * image builder, an image's file name): NAME or NAME@VERSION, e.g. go,
 * go@1.24, python@3, rust@*. NAME is 1 to LANG_NAME_MAX of a-z 0-9 - _ +;
 * VERSION is dotted digits (version_valid) or "*", any version. */
#define LANG_NAME_MAX    32
#define LANG_VERSION_MAX 31

struct lang_spec {
    char name[LANG_NAME_MAX + 1];
    char version[LANG_VERSION_MAX + 1]; /* "" when the spec has none */
};

/* Parses the len bytes at s as NAME[@VERSION] into out: true, or false
 * (out then empty) when they are not one. The one parser of the syntax. */
bool lang_spec_parse(const char *s, size_t len, struct lang_spec *out);

/* The first dotted number of at least two parts in a toolchain's
 * self-description ("go version go1.19.8 linux/amd64" -> "1.19.8",
 * "gcc (Debian 12.2.0-14) 12.2.0" -> "12.2.0"), copied into out. Returns
 * false, with out empty, when there is none or it does not fit. */
bool version_of_toolchain(const char *toolchain, char *out, size_t len);

#endif
