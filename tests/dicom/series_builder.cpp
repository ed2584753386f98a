#include "series_builder.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

namespace fs = std::filesystem;

namespace testdata {
namespace {

std::string ds(double v) {
  char buf[64];
  if (std::fabs(v) < 1e-12) v = 0;
  for (int prec = 15; prec > 1; --prec) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strlen(buf) <= 16) break;
  }
  return buf;
}
std::string ds_list(const double *v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "\\" : "") + ds(v[i]);
  return s;
}
std::string uid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
  return buf;
}
void register_encoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Keep SOP Instance UIDs: tests compare them with what they wrote.
    DJEncoderRegistration::registerCodecs(ECC_lossyYCbCr, EUC_never);
    OFLog::configure(OFLogger::WARN_LOG_LEVEL);
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

// Stored value of voxel (i,j,k): smooth (so lossy JPEG stays close) plus a
// little deterministic texture, spanning most of the stored range.
long stored_value(const Spec &s, int i, int j, int k) {
  const long lo = s.pixel_representation ? -(1L << (s.bits_stored - 1)) : 0;
  const long range = (1L << s.bits_stored) - 1;
  double f = 0.5 + 0.3 * std::sin(i * 0.31 + k * 0.2) * std::cos(j * 0.27) + 0.1 * ((i * 7 + j * 3 + k * 5) % 11) / 11.0;
  return lo + (long)std::floor(f * range);
}

double slope_of(const Spec &s, int k) { return s.enhanced && s.per_frame_rescale ? s.slope * (1 + k % 3) : s.slope; }

void put_common(DcmDataset &d, const Spec &s, const std::string &series_uid, const std::string &study_uid,
                const std::string &for_uid) {
  d.putAndInsertString(DCM_PatientName, "Test^Phantom");
  d.putAndInsertString(DCM_PatientID, "MI-TEST-1");
  d.putAndInsertString(DCM_PatientBirthDate, "19700101");
  d.putAndInsertString(DCM_PatientSex, "O");
  d.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  d.putAndInsertString(DCM_StudyDate, "20240101");
  d.putAndInsertString(DCM_StudyTime, "120000");
  d.putAndInsertString(DCM_StudyID, "1");
  d.putAndInsertString(DCM_AccessionNumber, "A1");
  d.putAndInsertString(DCM_ReferringPhysicianName, "");
  d.putAndInsertString(DCM_SeriesInstanceUID, series_uid.c_str());
  d.putAndInsertString(DCM_SeriesNumber, "2");
  d.putAndInsertString(DCM_SeriesDescription, "builder series");
  d.putAndInsertString(DCM_Modality, s.modality.c_str());
  d.putAndInsertString(DCM_FrameOfReferenceUID, for_uid.c_str());
  d.putAndInsertString(DCM_PositionReferenceIndicator, "");
  d.putAndInsertString(DCM_Manufacturer, "medinfer-tests");
  d.putAndInsertUint16(DCM_Rows, (Uint16)s.rows);
  d.putAndInsertUint16(DCM_Columns, (Uint16)s.cols);
  d.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  d.putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str());
  d.putAndInsertUint16(DCM_BitsAllocated, (Uint16)s.bits_allocated);
  d.putAndInsertUint16(DCM_BitsStored, (Uint16)s.bits_stored);
  d.putAndInsertUint16(DCM_HighBit, (Uint16)(s.bits_stored - 1));
  d.putAndInsertUint16(DCM_PixelRepresentation, (Uint16)s.pixel_representation);
  d.putAndInsertString(DCM_SliceThickness, ds(s.slice_spacing).c_str());
}

// Raw stored bytes of one slice (little-endian host order as DCMTK expects).
void slice_pixels(const Spec &s, int k, std::vector<Uint8> &out, std::mt19937 &rng) {
  const size_t n = (size_t)s.rows * s.cols, bpp = s.bits_allocated / 8;
  out.assign(n * bpp, 0);
  for (int j = 0; j < s.rows; ++j)
    for (int i = 0; i < s.cols; ++i) {
      long v = stored_value(s, i, j, k);
      uint32_t raw = (uint32_t)v & (uint32_t)((1ull << s.bits_stored) - 1);
      if (s.garbage_high_bits && s.bits_stored < s.bits_allocated && (rng() & 1)) raw |= 1u << (s.bits_allocated - 1);
      std::memcpy(&out[((size_t)j * s.cols + i) * bpp], &raw, bpp);
    }
}

OFCondition put_pixels(DcmDataset &d, const Spec &s, const std::vector<Uint8> &bytes) {
  if (s.bits_allocated == 8) return d.putAndInsertUint8Array(DCM_PixelData, bytes.data(), bytes.size());
  return d.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16 *>(bytes.data()), bytes.size() / 2);
}

std::string save(DcmFileFormat &ff, const Spec &s, const std::string &path) {
  DcmXfer x(s.transfer_syntax.c_str());
  E_TransferSyntax ts = x.getXfer();
  if (ts == EXS_Unknown) return "unknown transfer syntax " + s.transfer_syntax;
  DcmDataset *d = ff.getDataset();
  if (ts == EXS_JPEG2000LosslessOnly || ts == EXS_JPEG2000) {
    // No free JPEG 2000 encoder: store an encapsulated placeholder stream, enough
    // for the loader to recognise (and refuse) the syntax.
    DcmPixelData *pd = new DcmPixelData(DCM_PixelData);
    DcmPixelSequence *seq = new DcmPixelSequence(DCM_PixelSequenceTag);
    seq->insert(new DcmPixelItem(DCM_PixelItemTag));  // empty offset table
    DcmPixelItem *frag = new DcmPixelItem(DCM_PixelItemTag);
    Uint8 junk[16] = {0xFF, 0x4F, 0xFF, 0x51};
    frag->putUint8Array(junk, sizeof junk);
    seq->insert(frag);
    pd->putOriginalRepresentation(ts, nullptr, seq);
    d->insert(pd, OFTrue);
  } else if (x.isEncapsulated()) {
    register_encoders();
    OFCondition c;
    if (ts == EXS_JPEGProcess14SV1 || ts == EXS_JPEGProcess14) {
      DJ_RPLossless p;
      c = d->chooseRepresentation(ts, &p);
    } else if (ts == EXS_JPEGProcess1 || ts == EXS_JPEGProcess2_4) {
      DJ_RPLossy p(95);
      c = d->chooseRepresentation(ts, &p);
    } else if (ts == EXS_JPEGLSLossless) {
      DJLSRepresentationParameter p(2, OFTrue);
      c = d->chooseRepresentation(ts, &p);
    } else if (ts == EXS_RLELossless) {
      DcmRLERepresentationParameter p;
      c = d->chooseRepresentation(ts, &p);
    } else {
      c = d->chooseRepresentation(ts, nullptr);
    }
    if (c.bad() || !d->canWriteXfer(ts)) return "cannot encode " + s.transfer_syntax + ": " + c.text();
  }
  OFCondition c = ff.saveFile(path.c_str(), ts);
  if (c.bad()) return path + ": " + c.text();
  return "";
}

}  // namespace

std::string write_series(const Spec &s, const std::string &dir, Series &out) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  out = Series();
  out.series_uid = s.series_uid.empty() ? uid() : s.series_uid;
  out.study_uid = s.study_uid.empty() ? uid() : s.study_uid;
  const std::string for_uid = uid();
  double r[3] = {s.iop[0], s.iop[1], s.iop[2]}, c[3] = {s.iop[3], s.iop[4], s.iop[5]};
  double n[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
  const double t = std::tan(s.tilt_deg * M_PI / 180.0);
  double step[3];
  for (int a = 0; a < 3; ++a) step[a] = s.slice_spacing * (n[a] + t * c[a]);
  const double step_len = std::sqrt(step[0] * step[0] + step[1] * step[1] + step[2] * step[2]);

  mi_geometry &g = out.geometry;
  g.size[0] = s.cols, g.size[1] = s.rows, g.size[2] = s.slices;
  g.spacing[0] = s.col_spacing, g.spacing[1] = s.row_spacing, g.spacing[2] = step_len;
  for (int a = 0; a < 3; ++a) {
    g.origin[a] = s.origin[a];
    g.direction[3 * a + 0] = r[a];
    g.direction[3 * a + 1] = c[a];
    g.direction[3 * a + 2] = step[a] / step_len;
  }
  const size_t plane = (size_t)s.rows * s.cols;
  out.values.resize(plane * s.slices);
  for (int k = 0; k < s.slices; ++k)
    for (int j = 0; j < s.rows; ++j)
      for (int i = 0; i < s.cols; ++i)
        out.values[(size_t)k * plane + (size_t)j * s.cols + i] =
            (float)(stored_value(s, i, j, k) * slope_of(s, k) + s.intercept);
  out.positions.resize(s.slices);
  for (int k = 0; k < s.slices; ++k)
    for (int a = 0; a < 3; ++a) out.positions[k].push_back(s.origin[a] + k * step[a]);

  std::mt19937 rng(s.seed);
  std::vector<int> names(s.slices);
  for (int k = 0; k < s.slices; ++k) names[k] = k;
  std::shuffle(names.begin(), names.end(), rng);  // file names say nothing about order
  std::vector<Uint8> px;
  const std::string spacing = ds(s.row_spacing) + "\\" + ds(s.col_spacing);

  if (!s.enhanced) {
    for (int k = 0; k < s.slices; ++k) {
      DcmFileFormat ff;
      DcmDataset &d = *ff.getDataset();
      put_common(d, s, out.series_uid, out.study_uid, for_uid);
      const std::string sop = uid();
      out.sop_uids.push_back(sop);
      out.frames.push_back(0);
      d.putAndInsertString(DCM_SOPClassUID, s.modality == "MR" ? UID_MRImageStorage : UID_CTImageStorage);
      d.putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
      const int instance = s.reverse ? s.slices - k : k + 1;
      d.putAndInsertString(DCM_InstanceNumber, std::to_string(instance).c_str());
      d.putAndInsertString(DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
      d.putAndInsertString(DCM_ImagePositionPatient, ds_list(out.positions[k].data(), 3).c_str());
      d.putAndInsertString(DCM_ImageOrientationPatient, ds_list(s.iop, 6).c_str());
      d.putAndInsertString(DCM_PixelSpacing, spacing.c_str());
      if (s.tilt_deg != 0) d.putAndInsertString(DCM_GantryDetectorTilt, ds(s.tilt_deg).c_str());
      if (s.modality == "CT") {
        d.putAndInsertString(DCM_RescaleSlope, ds(s.slope).c_str());
        d.putAndInsertString(DCM_RescaleIntercept, ds(s.intercept).c_str());
        d.putAndInsertString(DCM_RescaleType, "HU");
      }
      slice_pixels(s, k, px, rng);
      if (put_pixels(d, s, px).bad()) return "cannot put pixel data";
      char name[32];
      snprintf(name, sizeof name, "F%05d", names[k] * 7 + 3);
      const std::string path = (fs::path(dir) / name).string();
      std::string err = save(ff, s, path);
      if (!err.empty()) return err;
      out.files.push_back(path);
    }
    return "";
  }

  // Enhanced CT: one file, frames in a shuffled order, geometry in functional groups.
  DcmFileFormat ff;
  DcmDataset &d = *ff.getDataset();
  put_common(d, s, out.series_uid, out.study_uid, for_uid);
  const std::string sop = uid();
  d.putAndInsertString(DCM_SOPClassUID, s.sop_class.empty() ? UID_EnhancedCTImageStorage : s.sop_class.c_str());
  d.putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
  d.putAndInsertString(DCM_InstanceNumber, "1");
  d.putAndInsertString(DCM_NumberOfFrames, std::to_string(s.slices).c_str());
  DcmItem *shared = nullptr, *it = nullptr;
  d.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
  shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, it, 0);
  it->putAndInsertString(DCM_ImageOrientationPatient, ds_list(s.iop, 6).c_str());
  shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, it, 0);
  it->putAndInsertString(DCM_PixelSpacing, spacing.c_str());
  it->putAndInsertString(DCM_SliceThickness, ds(s.slice_spacing).c_str());
  if (!s.per_frame_rescale && s.modality != "MR") {  // MR: no transformation, identity
    shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, it, 0);
    it->putAndInsertString(DCM_RescaleSlope, ds(s.slope).c_str());
    it->putAndInsertString(DCM_RescaleIntercept, ds(s.intercept).c_str());
    it->putAndInsertString(DCM_RescaleType, "HU");
  }
  std::vector<int> frame_of_slice(s.slices);
  std::vector<Uint8> all;
  for (int f = 0; f < s.slices; ++f) {
    const int k = names[f];  // frame f holds slice k
    frame_of_slice[k] = f + 1;
    DcmItem *pf = nullptr;
    d.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, pf, f);
    pf->findOrCreateSequenceItem(DCM_PlanePositionSequence, it, 0);
    it->putAndInsertString(DCM_ImagePositionPatient, ds_list(out.positions[k].data(), 3).c_str());
    pf->findOrCreateSequenceItem(DCM_FrameContentSequence, it, 0);
    it->putAndInsertUint32(DCM_InStackPositionNumber, (Uint32)(k + 1));
    if (s.per_frame_rescale) {
      pf->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, it, 0);
      it->putAndInsertString(DCM_RescaleSlope, ds(slope_of(s, k)).c_str());
      it->putAndInsertString(DCM_RescaleIntercept, ds(s.intercept).c_str());
      it->putAndInsertString(DCM_RescaleType, "HU");
    }
    slice_pixels(s, k, px, rng);
    all.insert(all.end(), px.begin(), px.end());
  }
  for (int k = 0; k < s.slices; ++k) {
    out.sop_uids.push_back(sop);
    out.frames.push_back(frame_of_slice[k]);
  }
  if (put_pixels(d, s, all).bad()) return "cannot put pixel data";
  const std::string path = (fs::path(dir) / "ENHANCED").string();
  std::string err = save(ff, s, path);
  if (!err.empty()) return err;
  out.files.push_back(path);
  return "";
}

}  // namespace testdata
