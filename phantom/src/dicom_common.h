// DICOM pieces shared by the single-frame and enhanced writers.
#ifndef MEDINFER_PHANTOM_DICOM_COMMON_H
#define MEDINFER_PHANTOM_DICOM_COMMON_H

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <string>
#include <vector>

#include "internal.h"

void phantom_register_codecs();
E_TransferSyntax phantom_xfer(mi_phantom_transfer_syntax ts);

// Patient, study, series, frame of reference, equipment and SOP common.
mi_status *phantom_put_common(DcmDataset *ds, const mi_phantom *p, const char *sop_class, const char *sop_uid,
                              const std::string &path);

// Stored pixel values (value - intercept) of slice k, appended to out.
void phantom_stored_slice(const mi_phantom *p, int64_t k, uint16_t *out);

// Put helpers that turn a DCMTK failure into a status naming path and tag.
mi_status *phantom_put(DcmItem *item, const DcmTagKey &tag, const std::string &value, const std::string &path);

// Encode in the requested transfer syntax and save atomically to path.
mi_status *phantom_save(DcmFileFormat &ff, const mi_phantom *p, const std::string &path);

std::string phantom_ds_list(const double *v, int n);

#endif
