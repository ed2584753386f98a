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
mi_status *mi_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size);
size_t mi_default_max_tensor_bytes(void);

#endif
