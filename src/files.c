/*
 * files.c -- reading a whole file, and writing one atomically (temporary
 * name, flush, fsync, rename); files.h says what each promises.
 *
 * Not here: what the bytes mean (the formats), memory-mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "files.h"

int lv_io_read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lv_error_set(0, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lv_error_set(0, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lv_error_set(0, "is a directory, not a file");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lv_error_set(0, "not a regular file");
    }
    /* The size from fstat is a first guess: read to the end whatever it
     * said, growing the buffer if the file grew. */
    size_t cap = (uint64_t)st.st_size < SIZE_MAX / 2 ? (size_t)st.st_size + 1
                                                     : SIZE_MAX / 2;
    uint8_t *buf = lv_malloc(cap);
    size_t n = 0;
    if (!buf) {
        close(fd);
        return lv_error_set(0, "out of memory (%zu bytes)", cap);
    }
    for (;;) {
        if (n == cap) {
            uint8_t *p = cap < SIZE_MAX / 4 ? lv_realloc(buf, 2 * cap) : NULL;
            if (!p) {
                free(buf);
                close(fd);
                return lv_error_set(0, "out of memory (%zu bytes)", 2 * cap);
            }
            buf = p;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return lv_error_set(0, "read error: %s", strerror(e));
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

/* After a rename, the directory entry itself is made durable (best
 * effort: some file systems refuse to fsync a directory). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = lv_malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int lv_io_write_file_atomic(const char *path, const void *data, size_t len)
{
    static unsigned long counter;
    unsigned long k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    size_t size = strlen(path) + 64;
    char *tmp = lv_malloc(size);
    if (!tmp)
        return lv_error_set(0, "out of memory");
    snprintf(tmp, size, "%s.tmp.%ld.%lu", path, (long)getpid(), k);

    /* "x": fail rather than write through an existing file or link */
    FILE *f = fopen(tmp, "wbx");
    if (!f) {
        int e = errno;
        free(tmp);
        return lv_error_set(0, "cannot create the file: %s", strerror(e));
    }
    const char *what = "write error";
    if (len && fwrite(data, 1, len, f) != len)
        goto fail;
    if (fflush(f) != 0)
        goto fail;
    /* EINVAL: this file system does not do fsync; nothing more to do */
    if (fsync(fileno(f)) != 0 && errno != EINVAL)
        goto fail;
    int closed = fclose(f);
    f = NULL;
    if (closed != 0)
        goto fail;
    what = "cannot replace it";
    if (rename(tmp, path) != 0)
        goto fail;
    sync_parent_dir(path);
    free(tmp);
    return 0;

fail:;
    int e = errno;
    if (f)
        fclose(f);
    remove(tmp);
    free(tmp);
    return lv_error_set(0, "%s: %s", what, strerror(e));
}
