/* Atomic writes and clean-up of what interrupted writes leave behind. */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json.h>

#include "report.h"

mi_status *mi_write_file_atomic(const char *path, const char *data, size_t size) {
  static unsigned counter;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return mi_error(MI_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return mi_error(MI_ERR_IO, "%s: cannot write (%s)", path, strerror(e));
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return mi_error(MI_ERR_IO, "%s: cannot write (%s)", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return mi_error(MI_ERR_IO, "%s: cannot rename the temporary file into place (%s)", path, strerror(e));
  }
  return NULL;
}

int mi_remove_stale_temp_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *t = strstr(e->d_name, ".tmp-");
    if (!t) continue;
    char *end = NULL;
    long pid = strtol(t + 5, &end, 10);
    if (pid <= 0 || !end || *end != '-') continue;
    /* Still running (another medinfer writing here): leave it alone. */
    if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
    if (pid == (long)getpid()) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) == 0 || (errno == EISDIR && mi_remove_tree(path) == 0)) ++removed;
  }
  closedir(d);
  return removed;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

int mi_remove_tree(const char *path) {
  /* Depth first, never following links out of the tree. */
  return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

mi_status *mi_write_json_atomic(const char *path, json_object *obj, const char *what) {
  size_t len = 0;
  const char *text =
      json_object_to_json_string_length(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  return text ? mi_write_file_atomic(path, text, len) : mi_error(MI_ERR_NO_MEMORY, "%s: cannot format the %s", path, what);
}
