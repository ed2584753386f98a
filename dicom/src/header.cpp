// Reads what a DICOM file says about its image planes, without pixel values.
// Classic single-frame images keep geometry at the top level; Enhanced and
// Legacy Converted Enhanced multi-frame images keep it in per-frame and shared
// functional groups (per-frame wins).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcspchrs.h>
#include <dcmtk/dcmdata/dctk.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "internal.h"

namespace mi_dicom {
namespace {

std::string get_string(DcmItem &item, const DcmTagKey &tag) {
  OFString v;
  if (item.findAndGetOFStringArray(tag, v).good()) return std::string(v.c_str());
  return std::string();
}

bool ascii(const std::string &s) {
  for (unsigned char ch : s)
    if (ch >= 0x80) return false;
  return true;
}

// A text element in UTF-8 (what reports, JSON and terminals take), from the
// file's SpecificCharacterSet; bytes it cannot convert (no or a wrong
// SpecificCharacterSet) are read as Latin-1, the commonest such case.
std::string get_text(DcmItem &item, const DcmTagKey &tag, const char *delimiters = "") {
  std::string v = get_string(item, tag);
  if (ascii(v)) return v;
  DcmSpecificCharacterSet cs;
  OFString out;
  if (cs.selectCharacterSet(get_string(item, DCM_SpecificCharacterSet).c_str()).good() &&
      cs.convertString(v.c_str(), v.size(), out, delimiters).good())
    return std::string(out.c_str(), out.length());
  std::string latin1;
  for (unsigned char ch : v) {
    if (ch < 0x80) latin1 += (char)ch;
    else latin1 += (char)(0xC0 | (ch >> 6)), latin1 += (char)(0x80 | (ch & 0x3F));
  }
  return latin1;
}

bool get_doubles(DcmItem &item, const DcmTagKey &tag, double *out, int n) {
  for (int i = 0; i < n; ++i) {
    Float64 v;
    if (item.findAndGetFloat64(tag, v, i).bad()) return false;
    out[i] = v;
  }
  return true;
}

int get_int(DcmItem &item, const DcmTagKey &tag, int dflt) {
  Sint32 s;
  if (item.findAndGetSint32(tag, s).good()) return s;
  Uint16 u;
  if (item.findAndGetUint16(tag, u).good()) return u;
  OFString str;  // IS strings such as NumberOfFrames
  if (item.findAndGetOFString(tag, str).good() && !str.empty()) {
    const long long v = strtoll(str.c_str(), nullptr, 10); /* saturates, where atoi's overflow is undefined */
    return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
  }
  return dflt;
}

// The item of functional-group macro `seq` for a frame: per-frame, else shared.
DcmItem *group(DcmItem *per_frame, DcmItem *shared, const DcmTagKey &seq) {
  DcmItem *it = nullptr;
  if (per_frame && per_frame->findAndGetSequenceItem(seq, it, 0).good() && it) return it;
  if (shared && shared->findAndGetSequenceItem(seq, it, 0).good() && it) return it;
  return nullptr;
}

// "" or what is wrong.  A multi-frame file has one per-frame item for each
// frame (Part 3, C.7.6.16): NumberOfFrames alone could claim 2^31 frames
// from a few bytes (the index then built a plane for each).
std::string read_functional_groups(DcmItem &ds, FileHeader &h) {
  DcmItem *shared = nullptr;
  ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
  DcmSequenceOfItems *per_frame = nullptr;
  const unsigned long items =
      ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).good() && per_frame ? per_frame->card() : 0;
  if (h.frames > 1 && items != (unsigned long)h.frames)
    return "NumberOfFrames " + std::to_string(h.frames) + ", but " + std::to_string(items) +
           " per-frame functional group items";
  for (int f = 0; f < h.frames; ++f) {
    DcmItem *pf = (unsigned long)f < items ? per_frame->getItem((unsigned long)f) : nullptr;
    Plane p;
    p.frame = f + 1;
    if (DcmItem *g = group(pf, shared, DCM_PlanePositionSequence))
      p.has_ipp = get_doubles(*g, DCM_ImagePositionPatient, p.ipp, 3);
    if (DcmItem *g = group(pf, shared, DCM_PlaneOrientationSequence))
      p.has_iop = get_doubles(*g, DCM_ImageOrientationPatient, p.iop, 6);
    if (DcmItem *g = group(pf, shared, DCM_PixelMeasuresSequence)) {
      get_doubles(*g, DCM_PixelSpacing, p.spacing, 2);
      Float64 t;
      if (f == 0 && g->findAndGetFloat64(DCM_SliceThickness, t).good()) h.slice_thickness = t;
      if (f == 0 && g->findAndGetFloat64(DCM_SpacingBetweenSlices, t).good()) h.spacing_between_slices = t;
    }
    if (DcmItem *g = group(pf, shared, DCM_PixelValueTransformationSequence)) {
      Float64 v;
      if (g->findAndGetFloat64(DCM_RescaleSlope, v).good()) p.slope = v;
      if (g->findAndGetFloat64(DCM_RescaleIntercept, v).good()) p.intercept = v;
    }
    h.planes.push_back(p);
  }
  return "";
}

// Part 10 files carry "DICM" after a 128-byte preamble.
bool has_dicm_magic(const std::string &path) {
  FILE *f = fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {0, 0, 0, 0};
  bool ok = fseek(f, 128, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4 && memcmp(magic, "DICM", 4) == 0;
  fclose(f);
  return ok;
}

}  // namespace

std::string parse_header(DcmItem &ds, const std::string &xfer_uid, FileHeader &h) {
  h.transfer_syntax = xfer_uid;
  h.patient_id = get_text(ds, DCM_PatientID);
  h.patient_name = get_text(ds, DCM_PatientName, "\\^=");
  h.study_uid = get_string(ds, DCM_StudyInstanceUID);
  h.study_date = get_string(ds, DCM_StudyDate);
  h.study_description = get_text(ds, DCM_StudyDescription);
  h.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  h.series_description = get_text(ds, DCM_SeriesDescription);
  h.modality = get_string(ds, DCM_Modality);
  h.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  h.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  h.series_number = get_int(ds, DCM_SeriesNumber, 0);
  // Any file parses as an implicit-VR dataset; real DICOM objects have UIDs.
  if (h.sop_instance_uid.empty() || h.series_uid.empty())
    return "not a DICOM object (no SOP Instance UID / Series Instance UID)";
  h.rows = get_int(ds, DCM_Rows, 0);
  h.cols = get_int(ds, DCM_Columns, 0);
  h.frames = get_int(ds, DCM_NumberOfFrames, 1);
  if (h.frames < 1) h.frames = 1;
  h.samples = get_int(ds, DCM_SamplesPerPixel, 1);
  h.bits_allocated = get_int(ds, DCM_BitsAllocated, 0);
  h.bits_stored = get_int(ds, DCM_BitsStored, h.bits_allocated);
  h.high_bit = get_int(ds, DCM_HighBit, h.bits_stored - 1);
  h.pixel_representation = get_int(ds, DCM_PixelRepresentation, 0);
  h.photometric = get_string(ds, DCM_PhotometricInterpretation);
  h.has_pixel_data = ds.tagExists(DCM_PixelData);
  Float64 t;
  if (ds.findAndGetFloat64(DCM_SliceThickness, t).good()) h.slice_thickness = t;
  if (ds.findAndGetFloat64(DCM_SpacingBetweenSlices, t).good()) h.spacing_between_slices = t;

  if (ds.tagExists(DCM_PerFrameFunctionalGroupsSequence) || ds.tagExists(DCM_SharedFunctionalGroupsSequence)) {
    std::string err = read_functional_groups(ds, h);
    if (!err.empty()) return err;
  } else {
    Plane p;
    p.frame = h.frames > 1 ? 1 : 0;
    p.has_ipp = get_doubles(ds, DCM_ImagePositionPatient, p.ipp, 3);
    p.has_iop = get_doubles(ds, DCM_ImageOrientationPatient, p.iop, 6);
    if (!get_doubles(ds, DCM_PixelSpacing, p.spacing, 2)) get_doubles(ds, DCM_ImagerPixelSpacing, p.spacing, 2);
    Float64 v;
    if (ds.findAndGetFloat64(DCM_RescaleSlope, v).good()) p.slope = v;
    if (ds.findAndGetFloat64(DCM_RescaleIntercept, v).good()) p.intercept = v;
    h.planes.push_back(p);
    // Old-style multi-frame (no functional groups) carries one position only.
    if (h.frames > 1) return "multi-frame image without per-frame functional groups (no per-frame positions)";
  }
  return "";
}

// An element claiming more bytes than its file holds: corrupt.  loadFile
// leaves values over its limit on disk and reading one later allocates the
// claimed length first (over a GB, from a 3 KB file).  What is wrong, or ""
// where no element of item does.
std::string oversized_element(DcmItem &item, size_t file_bytes) {
  DcmStack stack;
  while (item.nextObject(stack, OFTrue).good()) {
    DcmObject *o = stack.top();
    if (!o->isLeaf()) continue;
    const Uint32 len = static_cast<DcmElement *>(o)->getLengthField();
    if (len != DCM_UndefinedLength && len > file_bytes) {
      char msg[128];
      snprintf(msg, sizeof msg, "element (%04x,%04x) claims %lu bytes, the file has %zu", o->getGTag(), o->getETag(),
               (unsigned long)len, file_bytes);
      return msg;
    }
  }
  return "";
}

std::string read_header_file(const std::string &path, FileHeader &out) {
  DcmFileFormat ff;
  // Values over 4 KiB (pixel data) stay on disk: headers of thousands of files
  // can then be read in seconds.
  OFCondition c = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
  DcmDataset *ds = ff.getDataset();
  const size_t file_bytes = OFStandard::getFileSize(path.c_str());
  std::string oversized = oversized_element(*ff.getMetaInfo(), file_bytes);
  /* a deflated dataset's lengths are those of its inflated bytes */
  if (oversized.empty() && ds->getOriginalXfer() != EXS_DeflatedLittleEndianExplicit)
    oversized = oversized_element(*ds, file_bytes);
  if (c.bad()) {
    // A truncated or corrupt DICOM file usually still names its series: keep
    // that so the series is reported broken instead of silently thinner (the
    // UID read only where its length is sane).
    DcmElement *e = nullptr;
    OFString uid;
    if (ds->findAndGetElement(DCM_SeriesInstanceUID, e).good() && e && e->getLengthField() <= file_bytes &&
        e->getOFString(uid, 0).good())
      out.series_uid = uid.c_str();
    if (out.series_uid.empty() && oversized.empty() && !has_dicm_magic(path)) return "not a DICOM file";
    return std::string(out.series_uid.empty() ? "cannot read as DICOM (" : "truncated or corrupt DICOM file (") +
           (oversized.empty() ? c.text() : oversized) + ")";
  }
  if (!oversized.empty()) return "corrupt DICOM file (" + oversized + ")";
  OFString xfer;
  if (ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, xfer).bad() || xfer.empty())
    xfer = DcmXfer(ds->getOriginalXfer()).getXferID();
  OFString msclass;
  if (ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, msclass).good() &&
      msclass == UID_MediaStorageDirectoryStorage)
    return "DICOMDIR (directory record file, not an image)";
  out.path = path;
  return parse_header(*ds, xfer.c_str(), out);
}

std::string unsupported_transfer_syntax(const std::string &uid) {
  DcmXfer x(uid.c_str());
  switch (x.getXfer()) {
    case EXS_JPEG2000LosslessOnly:
    case EXS_JPEG2000:
    case EXS_JPEG2000MulticomponentLosslessOnly:
    case EXS_JPEG2000Multicomponent:
      return "JPEG 2000 transfer syntax " + uid + " is not supported (DCMTK's free codecs lack JPEG 2000)";
    case EXS_Unknown:
      return "unknown transfer syntax " + uid;
    default:
      break;
  }
  if (x.isEncapsulated()) {
    switch (x.getXfer()) {
      case EXS_JPEGProcess1: case EXS_JPEGProcess2_4: case EXS_JPEGProcess14: case EXS_JPEGProcess14SV1:
      case EXS_JPEGLSLossless: case EXS_JPEGLSLossy: case EXS_RLELossless:
        break;
      default:
        return std::string("transfer syntax ") + x.getXferName() + " (" + uid + ") is not supported";
    }
  }
  return "";
}

}  // namespace mi_dicom
