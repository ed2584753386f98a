// What ITK 5.2's NIfTI reader lets through, checked before it runs, with the
// niftilib that ITK bundles (nifti1_io.h, znzlib.h).  Each returns false
// with the reason in err, naming the file; true when the file passes, or
// when niftilib cannot parse its header (ITK's reader then refuses it with
// its own message).
#ifndef MEDINFER_PLUGIN_NIFTI_CHECK_H
#define MEDINFER_PLUGIN_NIFTI_CHECK_H

#include <string>

// Before NiftiImageIO::ReadImageInformation: the sform the header declares
// (sform_code > 0) must be finite with steps under 1e18 mm.  Its float SVD
// there calls abort() on a NaN (ending Slicer itself in library mode) and
// looped forever on steps of 3e38.
bool nifti_check_header(const std::string &path, std::string &err);

// Before reading the voxels: the file must hold all the data its header's
// dimensions and datatype need (a truncated copy, a vox_offset past the
// end).  niftilib fills what is missing with zeros without a word, and a
// truncated CT would be segmented as water.  A gzip-compressed file is
// decompressed once to count, up to what is needed.
bool nifti_check_data(const std::string &path, std::string &err);

#endif
