/* report.json of a segmentation job, and atomic file writing. */
#ifndef MEDINFER_SEG_REPORT_H
#define MEDINFER_SEG_REPORT_H

#include <stddef.h>

#include "medinfer/status.h"

/* Write `data` to path through a temporary file in the same folder, fsync'd
 * and renamed into place: readers see the old file or the new one, never a
 * partial one. */
mi_status *mi_write_file_atomic(const char *path, const char *data, size_t size);

/* `obj` as pretty-printed JSON (slashes unescaped) through
 * mi_write_file_atomic; `what` names the content in errors. */
struct json_object;
mi_status *mi_write_json_atomic(const char *path, struct json_object *obj, const char *what);

/* Remove temporary files and folders that interrupted runs left in dir
 * (names containing ".tmp-<pid>-" whose process is gone).  Returns how many
 * were removed. */
int mi_remove_stale_temp_files(const char *dir);

/* Remove a folder and everything in it (links are removed, not followed).
 * 0 on success. */
int mi_remove_tree(const char *path);

#endif
