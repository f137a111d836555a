/* What a layer tree (initramfs-builder/tree.h) must look like whatever
 * the layers held, for the fuzz targets that build one: every entry a
 * normalized in-tree path whose parent is a live directory it is linked
 * under, the children lists complete and consistent, the removal walk's
 * premises true (a parent is of no older layer than its children; nothing
 * below a directory cleared of lower layers is from one). */
#ifndef RUNVM_FUZZ_TREE_CHECK_H
#define RUNVM_FUZZ_TREE_CHECK_H

#include "initramfs-builder/tree.h"

/* Aborts, naming what broke, when t is not as above. */
void tree_check(struct tree *t);

#endif
