/* Removing directory trees that a step wrote: the work directory of a RUN
 * and what it left in /tmp. The step is hostile, so the walk goes by file
 * descriptor (openat/unlinkat), never follows a symlink, never leaves the
 * file system it starts on, and copes with any depth using three fds and no
 * recursion: PID 1's stack and fd table are not the snippet's to exhaust,
 * and paths longer than PATH_MAX are fine. Run it when no process of the
 * step is left, as the agent does. */
#ifndef RUNVM_TREE_H
#define RUNVM_TREE_H

/* Removes everything inside the directory at path and keeps the directory
 * (a mount point such as /tmp). 0, or the first -errno, after which the
 * walk stops: what is left is left. */
int tree_empty(const char *path) __attribute__((warn_unused_result));

/* Removes the directory at path and everything in it. 0 or -errno (-ENOENT
 * when there is none). */
int tree_remove(const char *path) __attribute__((warn_unused_result));

#endif
