/* medinfer status: the error type every fallible medinfer call returns.
 *
 * NULL means success.  A non-NULL status is owned by the caller, who
 * releases it with mi_status_free().  Messages name the file, node or
 * operator at fault. */
#ifndef MEDINFER_STATUS_H
#define MEDINFER_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mi_code {
  MI_OK = 0,
  MI_ERR_INVALID_ARGUMENT = 1, /* caller passed something wrong           */
  MI_ERR_IO = 2,               /* file could not be read or written        */
  MI_ERR_PARSE = 3,            /* file is not valid (ONNX, DICOM, JSON...)  */
  MI_ERR_UNSUPPORTED = 4,      /* operator, attribute, type or syntax not handled */
  MI_ERR_INVALID_MODEL = 5,    /* graph is inconsistent                    */
  MI_ERR_SHAPE = 6,            /* shapes or geometry do not fit            */
  MI_ERR_NO_MEMORY = 7,        /* allocation refused or failed             */
  MI_ERR_INTERNAL = 8,
  MI_ERR_CANCELLED = 9         /* the caller asked to stop                 */
} mi_code;

typedef struct mi_status mi_status;

mi_code mi_status_code(const mi_status *st);        /* MI_OK for NULL        */
const char *mi_status_message(const mi_status *st); /* "" for NULL; owned by st */
void mi_status_free(mi_status *st);                 /* accepts NULL          */

/* Constructors for module implementations. */
mi_status *mi_error(mi_code code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prefix an existing error's message ("ctx: old"); returns st. */
mi_status *mi_error_prefix(mi_status *st, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define MI_TRY(expr)                   \
  do {                                 \
    mi_status *mi_try_st_ = (expr);    \
    if (mi_try_st_) return mi_try_st_; \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
