// External checks of a written SEG: dciodvfy (dicom3tools) and pydicom.
// Missing tools fail the test: the README's install step provides them.
#ifndef MEDINFER_TESTS_SEG_CHECK_H
#define MEDINFER_TESTS_SEG_CHECK_H

#include <string>

#include "medinfer/dicom.h"

namespace segcheck {

// Runs a shell command; returns its exit status and fills output (stdout+stderr).
int run(const std::string &cmd, std::string &output);

// "" if dciodvfy reports no "Error" line, else the error lines (or why it could not run).
std::string dciodvfy_errors(const std::string &path);

// "" if check_seg.py (pydicom) accepts the SEG against the label map, else its output.
std::string pydicom_check(const mi_dicom_volume *src, const unsigned char *labels, size_t n_segments,
                          const std::string &seg_path, const std::string &work_dir);

}  // namespace segcheck
#endif
