/*
 * lockfile.c -- lockfile.h on flock(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "error.h"
#include "lockfile.h"

int lv_lock_file(const char *path, long *holder)
{
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return lv_error_set(0, "cannot open the lock file %s: %s", path,
                            strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0)
            *holder = strtol(buf, NULL, 10);
        close(fd);
        if (e == EWOULDBLOCK)
            return lv_error_set(0, "%s is held by process %ld", path, *holder);
        return lv_error_set(0, "cannot lock %s: %s", path, strerror(e));
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return lv_error_set(0, "cannot write the lock file %s: %s", path,
                            strerror(e));
    }
    return fd;
}

void lv_unlock_file(int fd)
{
    if (fd >= 0)
        close(fd);
}
