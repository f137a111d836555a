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

/* The first dotted number of at least two parts in a toolchain's
 * self-description ("go version go1.19.8 linux/amd64" -> "1.19.8",
 * "gcc (Debian 12.2.0-14) 12.2.0" -> "12.2.0"), copied into out. Returns
 * false, with out empty, when there is none or it does not fit. */
bool version_of_toolchain(const char *toolchain, char *out, size_t len);

#endif
