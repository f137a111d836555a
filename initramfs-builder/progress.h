/* Progress and error messages on stderr, prefixed "initramfs-builder: ". */
#ifndef RUNVM_BUILDER_PROGRESS_H
#define RUNVM_BUILDER_PROGRESS_H

/* Silences progress() (errors still print). */
void progress_set_quiet(int quiet);

/* Prints a progress line unless quiet. */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints an error line ("initramfs-builder: error: ..."). */
void progress_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
