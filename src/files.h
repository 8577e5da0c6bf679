/*
 * files.h -- whole files in and out of memory: every file lvae reads is
 * read whole into a buffer (then parsed with a length, never trusted),
 * and every file it writes is written atomically, so that a crash or a
 * full disk never leaves half a checkpoint or half an image at the path.
 *
 * Errors: -1 with a message in lv_error (error.h) that names the fault
 * ("cannot open: No such file or directory"), not the file, which the
 * caller puts in front.
 *
 * Not here: what is in the bytes (bytes.h and the formats), streaming
 * reads of large files (digest.c hashes in blocks; nifticlib reads its
 * own), the run folder's lock (lockfile.h).
 */
#ifndef LV_FILES_H
#define LV_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file into a malloc'd buffer (*data, *len; the
 * caller frees *data, which is non-NULL on success even for an empty
 * file). Fails on a directory or a special file. */
int lv_io_read_file(const char *path, uint8_t **data, size_t *len);
/* Writes data to path atomically: to "<path>.tmp.<pid>.<n>" in the same
 * directory, flushed and fsync'ed, then renamed over path (and the
 * directory fsync'ed, where the file system allows). On failure the
 * temporary is removed and path is left as it was. */
int lv_io_write_file_atomic(const char *path, const void *data, size_t len);

#endif
