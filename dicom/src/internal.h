// Internal types shared by the dicom module's translation units (C++ only).
#ifndef MEDINFER_DICOM_INTERNAL_H
#define MEDINFER_DICOM_INTERNAL_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "medinfer/dicom.h"

class DcmItem;
class DcmDataset;
class DcmFileFormat;

namespace mi_dicom {

// Register DCMTK's JPEG, JPEG-LS and RLE decoders once per process.
void register_codecs();

// One image plane: a single-frame instance or one frame of a multi-frame one.
struct Plane {
  int file = 0;         // index into the header list it came from
  int32_t frame = 0;    // 1-based for multi-frame, 0 for single-frame
  bool has_ipp = false, has_iop = false;
  double ipp[3] = {0, 0, 0};
  double iop[6] = {0, 0, 0, 0, 0, 0};
  double spacing[2] = {0, 0};  // row spacing (between rows), column spacing
  double slope = 1, intercept = 0;
};

// What one file says about itself (without pixel values).
struct FileHeader {
  std::string path;
  std::string patient_id, patient_name, study_uid, study_date, study_description;
  std::string series_uid, series_description, modality, sop_class_uid, sop_instance_uid;
  std::string transfer_syntax;  // UID as stored
  int series_number = 0;
  int rows = 0, cols = 0, frames = 1, samples = 1;
  int bits_allocated = 0, bits_stored = 0, high_bit = 0, pixel_representation = 0;
  std::string photometric;
  bool has_pixel_data = false;
  double slice_thickness = 0, spacing_between_slices = 0;
  std::vector<Plane> planes;  // one per frame
};

// Reads the header of a loaded dataset.  Returns "" or the reason it is not a
// usable image (the caller prefixes the file name).
std::string parse_header(DcmItem &dataset, const std::string &xfer_uid, FileHeader &out);

// Loads a file's header only (large values stay on disk).  Returns "" or reason.
std::string read_header_file(const std::string &path, FileHeader &out);

// Result of putting a series' planes in spatial order.
struct Plan {
  mi_geometry geometry{};
  std::vector<int> order;  // indices into the plane list, ascending along the stack
  unsigned issues = 0;
  std::vector<std::string> warnings;
  std::string orientation;  // AXIAL / CORONAL / SAGITTAL / OBLIQUE
};

// Flattens the planes of `files` (plane.file = index in files) and orders them.
// Returns "" or why the series cannot be loaded.
std::string plan_volume(const std::vector<FileHeader> &files, bool allow_irregular, std::vector<Plane> &planes,
                        Plan &plan);

// Orientation label of an ImageOrientationPatient.
std::string orientation_label(const double iop[6]);

// Transfer syntaxes we cannot decode: "" if fine, else a reason.
std::string unsupported_transfer_syntax(const std::string &uid);

// First unreadable file that names series i of idx ("" if none), as
// "<path>: <reason>".
std::string index_series_broken(const mi_dicom_index *idx, size_t i);

// Output helpers shared by the SEG and SR writers (output.cpp).
std::string format_ds(double v);  // DS text, at most 16 characters
std::string new_uid();
// Refuses a folder, a source file of src (kind names the object: "segmentation")
// or a missing output folder.
mi_status *check_output(const mi_dicom_volume *src, const std::string &out, const char *kind);
// A temp path next to `path`.
std::string temp_path_for(const std::string &path);
// Saves ff to a temp path next to out and renames it into place.
mi_status *save_atomic(DcmFileFormat &ff, const std::string &out);

}  // namespace mi_dicom

// The opaque handles.
struct mi_dicom_volume {
  mi_geometry geometry{};
  float *data = nullptr;
  unsigned issues = 0;
  std::vector<std::string> warnings;
  struct Slice {
    std::string sop_class_uid, sop_instance_uid, file;
    int32_t frame = 0;
    double ipp[3] = {0, 0, 0};
  };
  std::vector<Slice> slices;
  std::unique_ptr<DcmDataset> header;  // source attributes minus pixel data
  std::map<std::string, std::string> attribute_cache;
  ~mi_dicom_volume();
};

#endif
