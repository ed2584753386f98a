/* Operator family tables (one per file in ops/), each ending in {NULL}. */
#ifndef MEDINFER_OPS_H
#define MEDINFER_OPS_H
#include "../internal.h"

extern const mi_op_def mi_ops_conv[];        /* Conv, ConvTranspose */
extern const mi_op_def mi_ops_pool[];        /* MaxPool, AveragePool, Global*Pool */
extern const mi_op_def mi_ops_elementwise[]; /* Add..Erf, Max/Min/Sum/Mean */
extern const mi_op_def mi_ops_activation[];  /* Relu..Clip */
extern const mi_op_def mi_ops_softmax[];     /* Softmax, LogSoftmax */
extern const mi_op_def mi_ops_norm[];        /* Batch/Instance/LayerNormalization */
extern const mi_op_def mi_ops_gemm[];        /* Gemm, MatMul */
extern const mi_op_def mi_ops_reduce[];      /* Reduce*, ArgMax/ArgMin */
extern const mi_op_def mi_ops_rnn[];         /* LSTM, GRU */
extern const mi_op_def mi_ops_shape[];       /* Reshape, Concat, Slice, Gather, Cast, ... */
extern const mi_op_def mi_ops_pad[];         /* Pad */
extern const mi_op_def mi_ops_resize[];      /* Resize, Upsample */
extern const mi_op_def mi_ops_detect[];      /* TopK, NonMaxSuppression, RoiAlign, NonZero */
extern const mi_op_def mi_ops_scatter[];     /* ScatterElements, Scatter, ScatterND */
extern const mi_op_def mi_ops_control[];     /* If */

#endif
