#include "ops.h"

const mi_op_def mi_ops_activation[] = {
    {NULL},
};
