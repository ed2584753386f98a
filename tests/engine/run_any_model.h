/* Runs a loaded model of unknown origin (a mutated or fuzzed file) on
 * zero-filled inputs of its declared shapes, symbolic dimensions taken as 2:
 * shared by mutate_models, edit_nodes and the fuzz target (tests/fuzz); and
 * the file reader the first two share. */
#ifndef MEDINFER_TESTS_RUN_ANY_MODEL_H
#define MEDINFER_TESTS_RUN_ANY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medinfer/engine.h"

/* Runs m unless it has over 8 inputs or outputs, or an input over
 * max_numel elements or of no known type.  false only when a call failed
 * with an empty message (every error must say what went wrong). */
bool mi_test_run_any(mi_model *m, int64_t max_numel);

/* A whole file, malloc'd (the caller frees it), its size in *len; NULL when
 * it cannot be read. */
uint8_t *mi_test_read_file(const char *path, size_t *len);

#endif
