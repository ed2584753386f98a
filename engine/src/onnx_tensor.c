/* onnx.TensorProto -> mi_tensor, with every length checked against the
 * declared dims so that a hostile file cannot make us read out of bounds. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

static mi_status *read_external(const Onnx__TensorProto *tp, const char *base_dir,
                                const char *what, size_t nbytes, void *dst) {
  const char *location = NULL;
  long long offset = 0, length = -1;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e->key || !e->value) continue;
    if (strcmp(e->key, "location") == 0) location = e->value;
    else if (strcmp(e->key, "offset") == 0) offset = strtoll(e->value, NULL, 10);
    else if (strcmp(e->key, "length") == 0) length = strtoll(e->value, NULL, 10);
  }
  if (!location || !location[0])
    return mi_error(MI_ERR_PARSE, "%s: external data without a location", what);
  if (!base_dir)
    return mi_error(MI_ERR_INVALID_ARGUMENT,
                    "%s: external data '%s' but the model was loaded from memory without a folder",
                    what, location);
  /* External files must stay beside the model: no absolute paths, no "..". */
  if (location[0] == '/' || strstr(location, ".."))
    return mi_error(MI_ERR_PARSE, "%s: external data location '%s' leaves the model folder", what,
                    location);
  if (offset < 0) return mi_error(MI_ERR_PARSE, "%s: negative external data offset", what);
  if (length >= 0 && (size_t)length != nbytes)
    return mi_error(MI_ERR_PARSE, "%s: external data length %lld does not match %zu bytes of dims",
                    what, length, nbytes);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", base_dir, location);
  FILE *f = fopen(path, "rb");
  if (!f) return mi_error(MI_ERR_IO, "%s: cannot open external data '%s': %s", what, path, strerror(errno));
  mi_status *st = NULL;
  if (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(dst, 1, nbytes, f) != nbytes)
    st = mi_error(MI_ERR_IO, "%s: external data '%s' is shorter than offset %lld + %zu bytes", what,
                  path, offset, nbytes);
  fclose(f);
  return st;
}

mi_status *mi_onnx_tensor_decode(Onnx__TensorProto *tp, const char *base_dir,
                                 const char *what, size_t max_bytes, mi_tensor *out) {
  memset(out, 0, sizeof *out);
  mi_dtype dt = (mi_dtype)(tp->has_data_type ? tp->data_type : 0);
  if (!mi_dtype_size(dt))
    return mi_error(MI_ERR_UNSUPPORTED, "%s: element type %d (%s) is not supported", what,
                    (int)tp->data_type, mi_onnx_dtype_name(tp->data_type));
  if (tp->n_dims > MI_MAX_DIMS)
    return mi_error(MI_ERR_UNSUPPORTED, "%s: rank %zu exceeds %d", what, tp->n_dims, MI_MAX_DIMS);
  if (tp->segment) return mi_error(MI_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
  for (size_t i = 0; i < tp->n_dims; i++)
    if (tp->dims[i] < 0)
      return mi_error(MI_ERR_PARSE, "%s: negative dimension %lld", what, (long long)tp->dims[i]);
  mi_tensor_set_shape(out, dt, (int)tp->n_dims, tp->dims);
  size_t nbytes = 0; /* from the dims, without overflow: they are the file's */
  mi_status *st = mi_tensor_checked_nbytes(out, max_bytes, &nbytes);
  if (st) return mi_error_prefix(st, "%s", what);
  /* Raw data of the right size is taken over rather than copied: weights
   * then exist once in memory while a model loads. */
  bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  if (!external && tp->has_raw_data && tp->raw_data.data && tp->raw_data.len && tp->raw_data.len == nbytes) {
    out->data = tp->raw_data.data;
    out->owns_data = true;
    tp->raw_data.data = NULL;
    tp->raw_data.len = 0;
    tp->has_raw_data = 0;
    return NULL;
  }
  st = mi_tensor_alloc(out, max_bytes);
  if (st) return mi_error_prefix(st, "%s", what);
  const size_t n = nbytes / mi_dtype_size(dt);

  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    st = read_external(tp, base_dir, what, nbytes, out->data);
  } else if (tp->has_raw_data) {
    if (tp->raw_data.len != nbytes)
      st = mi_error(MI_ERR_PARSE, "%s: raw data holds %zu bytes but dims need %zu", what,
                    tp->raw_data.len, nbytes);
    else if (nbytes)
      memcpy(out->data, tp->raw_data.data, nbytes);
  } else {
    size_t have = 0;
    switch (dt) {
      case MI_FLOAT: have = tp->n_float_data; break;
      case MI_DOUBLE: have = tp->n_double_data; break;
      case MI_INT64: have = tp->n_int64_data; break;
      case MI_UINT32: case MI_UINT64: have = tp->n_uint64_data; break;
      default: have = tp->n_int32_data; break;
    }
    if (have != n) {
      st = mi_error(MI_ERR_PARSE, "%s: holds %zu values but dims need %zu", what, have, n);
    } else {
      for (size_t i = 0; i < n; i++) {
        switch (dt) {
          case MI_FLOAT: ((float *)out->data)[i] = tp->float_data[i]; break;
          case MI_DOUBLE: ((double *)out->data)[i] = tp->double_data[i]; break;
          case MI_INT64: ((int64_t *)out->data)[i] = tp->int64_data[i]; break;
          case MI_UINT32: ((uint32_t *)out->data)[i] = (uint32_t)tp->uint64_data[i]; break;
          case MI_UINT64: ((uint64_t *)out->data)[i] = tp->uint64_data[i]; break;
          default: mi_tensor_set_f64(out, (int64_t)i, (double)tp->int32_data[i]); break;
        }
      }
    }
  }
  if (st) {
    free(out->data);
    memset(out, 0, sizeof *out);
  }
  return st;
}

const char *mi_onnx_dtype_name(int t) {
  static const char *names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16",
                                "int32", "int64", "string", "bool", "float16", "float64",
                                "uint32", "uint64", "complex64", "complex128", "bfloat16"};
  return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

mi_status *mi_file_bytes_open(const char *path, size_t max_bytes, mi_file_bytes *f) {
  memset(f, 0, sizeof *f);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO is refused, not waited on */
  if (fd < 0) return mi_error(MI_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return mi_error(MI_ERR_IO, "cannot read '%s': not a regular file", path);
  }
  if (sb.st_size < 0 || (max_bytes && (uint64_t)sb.st_size > max_bytes) || (uint64_t)sb.st_size > SIZE_MAX / 2) {
    close(fd);
    return mi_error(MI_ERR_IO, "cannot read '%s': size %lld is not usable", path, (long long)sb.st_size);
  }
  f->size = (size_t)sb.st_size;
  if (f->size) {
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE; /* read ahead in one go: decoding walks all of it */
#endif
    void *p = mmap(NULL, f->size, PROT_READ, flags, fd, 0);
    if (p != MAP_FAILED) {
      close(fd);
      f->data = p;
      f->mapped = true;
      return NULL;
    }
  }
  /* Empty, or a file system that cannot map: read it. */
  f->data = malloc(f->size ? f->size : 1);
  if (!f->data) {
    close(fd);
    return mi_error(MI_ERR_NO_MEMORY, "cannot read '%s': out of memory", path);
  }
  size_t got = 0;
  while (got < f->size) {
    const ssize_t r = read(fd, f->data + got, f->size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      mi_status *st = mi_error(MI_ERR_IO, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "the file shrank");
      close(fd);
      mi_file_bytes_close(f);
      return st;
    }
    got += (size_t)r;
  }
  close(fd);
  return NULL;
}

void mi_file_bytes_close(mi_file_bytes *f) {
  if (!f || !f->data) return;
  if (f->mapped) munmap(f->data, f->size);
  else free(f->data);
  memset(f, 0, sizeof *f);
}

mi_status *mi_tensor_load_pb(const char *path, mi_tensor **out) {
  *out = NULL;
  mi_file_bytes file;
  MI_TRY(mi_file_bytes_open(path, 0, &file));
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, file.size, file.data);
  mi_file_bytes_close(&file);
  if (!tp) return mi_error(MI_ERR_PARSE, "'%s' is not a serialized onnx.TensorProto", path);
  mi_tensor *t = calloc(1, sizeof *t);
  mi_status *st = t ? mi_onnx_tensor_decode(tp, NULL, path, mi_default_max_tensor_bytes(), t)
                    : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (st) {
    free(t);
    return st;
  }
  t->owns_data = true;
  *out = t;
  return NULL;
}
