/* ONNX protobuf decoding shared by the model loader and tensor files. */
#ifndef MEDINFER_ONNX_INTERNAL_H
#define MEDINFER_ONNX_INTERNAL_H

#include "internal.h"
#include "onnx.pb-c.h"

/* Decode tp into out (owned data; raw data is moved out of tp, not copied). base_dir resolves external data (NULL:
 * refuse it); `what` names the tensor in messages. */
mi_status *mi_onnx_tensor_decode(Onnx__TensorProto *tp, const char *base_dir,
                                 const char *what, size_t max_bytes, mi_tensor *out);
const char *mi_onnx_dtype_name(int onnx_type);
/* A file's bytes, mapped read-only where the file system allows (else read
 * into the heap).  Mapping shares the page cache's copy instead of filling a
 * private one page fault by page fault (ResNet-50's 100 MB: 360 ms -> 5 ms on
 * a 2-core VM).  A mapped file truncated by another program while it is read
 * faults, as with any mapped loader: the loader unmaps it once decoded. */
typedef struct mi_file_bytes {
  uint8_t *data;
  size_t size;
  bool mapped;
} mi_file_bytes;
/* Fails naming the file: missing, not a regular file, or over max_bytes (0: no limit). */
mi_status *mi_file_bytes_open(const char *path, size_t max_bytes, mi_file_bytes *f);
void mi_file_bytes_close(mi_file_bytes *f); /* accepts NULL and closed ones */
size_t mi_default_max_tensor_bytes(void);

#endif
