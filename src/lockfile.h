/*
 * lockfile.h -- one process at a time in a run folder: an advisory lock
 * (flock) on a file, which the kernel drops when the holder exits or is
 * killed, so a lock is never left stale.
 */
#ifndef LV_LOCKFILE_H
#define LV_LOCKFILE_H

/* Takes the lock on path (made if missing) and writes this process's pid
 * into the file. Returns the open descriptor (keep it; close it to
 * release), or -1: with *holder the pid written by the process that holds
 * the lock (0 if unknown) and lv_error set. */
int lv_lock_file(const char *path, long *holder);
void lv_unlock_file(int fd);

#endif
