// DICOM SEG writer on DCMTK's dcmseg: segments, per-frame references to the
// source slices, plane positions and the dimension organization viewers use
// (ReferencedSegmentNumber, then ImagePositionPatient).
#include <algorithm>
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/cielabutil.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "internal.h"
#include "seg_bits.h"
#include "seg_frames.h"

#ifndef MEDINFER_VERSION
#define MEDINFER_VERSION "0"
#endif

using namespace mi_dicom;

namespace {

std::string ds(double v) { return format_ds(v); }

mi_status *cond(const OFCondition &c, const char *what, const std::string &out) {
  if (c.good()) return nullptr;
  return mi_error(MI_ERR_INTERNAL, "dicom: %s: %s failed (%s)", out.c_str(), what, c.text());
}

std::string attr(const mi_dicom_volume *v, const char *kw) { return mi_dicom_volume_attribute(v, kw); }

mi_status *add_segments(DcmSegmentation &seg, const mi_seg_segment *segs, size_t n, const std::string &out) {
  for (size_t i = 0; i < n; ++i) {
    const mi_seg_segment &s = segs[i];
    if (!s.label || !s.category_scheme || !s.category_value || !s.category_meaning || !s.type_scheme ||
        !s.type_value || !s.type_meaning)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: segment %zu lacks a label or category/type code", out.c_str(),
                      i + 1);
    if (s.algorithm_type != MI_SEG_ALGO_MANUAL && (!s.algorithm_name || !*s.algorithm_name))
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: segment %zu ('%s') needs an algorithm name", out.c_str(), i + 1,
                      s.label);
    DcmSegTypes::E_SegmentAlgoType algo = s.algorithm_type == MI_SEG_ALGO_MANUAL          ? DcmSegTypes::SAT_MANUAL
                                          : s.algorithm_type == MI_SEG_ALGO_SEMIAUTOMATIC ? DcmSegTypes::SAT_SEMIAUTOMATIC
                                                                                           : DcmSegTypes::SAT_AUTOMATIC;
    DcmSegment *segment = nullptr;
    OFCondition c = DcmSegment::create(segment, s.label, CodeSequenceMacro(s.category_value, s.category_scheme, s.category_meaning),
                                       CodeSequenceMacro(s.type_value, s.type_scheme, s.type_meaning), algo,
                                       s.algorithm_type == MI_SEG_ALGO_MANUAL ? "" : s.algorithm_name);
    if (c.bad() || !segment)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: segment %zu ('%s') is invalid (%s)", out.c_str(), i + 1,
                      s.label, c.text());
    if (s.description && *s.description) segment->setSegmentDescription(s.description);
    uint16_t lab[3];
    mi_seg_rgb_to_dicom_lab(s.rgb, lab);
    segment->setRecommendedDisplayCIELabValue(lab[0], lab[1], lab[2]);
    Uint16 number = 0;
    c = seg.addSegment(segment, number);
    if (c.bad()) {
      delete segment;
      return cond(c, "adding a segment", out);
    }
  }
  return nullptr;
}

// Patient, study, frame of reference from the source; new series; equipment.
mi_status *describe(DcmSegmentation &seg, const mi_dicom_volume *src, const mi_seg_options &o, const std::string &out) {
  MI_TRY(cond(seg.importFromSourceImage(*src->header, OFTrue), "importing patient/study/frame of reference", out));
  MI_TRY(cond(seg.getSeries().setSeriesInstanceUID(new_uid().c_str()), "setting Series Instance UID", out));
  seg.getSeries().setSeriesDescription(o.series_description);
  seg.getSeries().setSeriesNumber(std::to_string(o.series_number).c_str());
  seg.getSOPCommon().setSOPInstanceUID(new_uid().c_str());
  return nullptr;
}

mi_status *add_references(DcmSegmentation &seg, const mi_dicom_volume *src, const std::string &out) {
  IODReferences refs;
  std::set<std::string> seen;
  const std::string patient = attr(src, "PatientID"), study = attr(src, "StudyInstanceUID"),
                    series = attr(src, "SeriesInstanceUID");
  for (const auto &s : src->slices) {
    if (!seen.insert(s.sop_instance_uid).second) continue;
    auto *ref = new IODImageReference(patient.c_str(), study.c_str(), series.c_str(), s.sop_instance_uid.c_str(),
                                      s.sop_class_uid.c_str());
    if (!refs.add(ref)) {  // refused (its own check): still ours to free
      delete ref;
      return mi_error(MI_ERR_INVALID_ARGUMENT,
                      "dicom: %s: the source's UIDs cannot be referenced (study '%.80s', series '%.80s', instance "
                      "'%.80s', class '%.80s')",
                      out.c_str(), study.c_str(), series.c_str(), s.sop_instance_uid.c_str(), s.sop_class_uid.c_str());
    }
  }
  if (seg.getCommonInstanceReference().addReferences(refs, study.c_str()) == 0)
    return mi_error(MI_ERR_INTERNAL, "dicom: %s: could not reference the source series", out.c_str());
  return nullptr;
}

mi_status *add_shared_groups(DcmSegmentation &seg, const mi_dicom_volume *src, const std::string &out) {
  const mi_geometry &g = src->geometry;
  FGPlaneOrientationPatient orient;
  const double *d = g.direction;
  MI_TRY(cond(orient.setImageOrientationPatient(ds(d[0]).c_str(), ds(d[3]).c_str(), ds(d[6]).c_str(), ds(d[1]).c_str(),
                                                ds(d[4]).c_str(), ds(d[7]).c_str()),
              "setting orientation", out));
  MI_TRY(cond(seg.addForAllFrames(orient), "adding plane orientation", out));
  // Distance between planes along the normal (differs from spacing[2] under tilt).
  double n[3] = {d[3] * d[7] - d[6] * d[4], d[6] * d[1] - d[0] * d[7], d[0] * d[4] - d[3] * d[1]};
  double between = std::fabs(g.spacing[2] * (n[0] * d[2] + n[1] * d[5] + n[2] * d[8]));
  std::string thickness = attr(src, "SliceThickness");
  if (thickness.empty()) thickness = ds(between);
  FGPixelMeasures measures;
  measures.setPixelSpacing((ds(g.spacing[1]) + "\\" + ds(g.spacing[0])).c_str());
  measures.setSliceThickness(thickness.c_str());
  measures.setSpacingBetweenSlices(ds(between).c_str());
  MI_TRY(cond(seg.addForAllFrames(measures), "adding pixel measures", out));
  return nullptr;
}

// While BINARY frames are added and the dataset encoded, dcmseg sees 1x1
// frames (seg_bits.h): its addFrame packs and keeps rows x columns pixels a
// frame (DCMTK 3.6.7 segdoc.cc reads them from the Image Pixel module at each
// call), and writeDataset sizes Pixel Data from them and the frame count.
// The writer then sets Rows, Columns and Pixel Data in the encoded dataset.
class OnePixelFrames {
 public:
  // The module through the IOD base class's public accessor (dcmseg's own is protected).
  explicit OnePixelFrames(DcmSegmentation &seg)
      : px_(*OFget<IODImagePixelModule<Uint8> >(&static_cast<DcmSegmentation::IODImage &>(seg).getImagePixel())) {
    px_.getRows(rows_);
    px_.getColumns(cols_);
    px_.setRows(1);
    px_.setColumns(1);
  }
  ~OnePixelFrames() {
    px_.setRows(rows_);
    px_.setColumns(cols_);
  }

 private:
  IODImagePixelModule<Uint8> &px_;
  Uint16 rows_ = 0, cols_ = 0;
};

mi_status *add_frames(DcmSegmentation &seg, const mi_dicom_volume *src, const FrameSource &frames, size_t n_segments,
                      bool binary, std::vector<FrameRef> &order, std::vector<int32_t> &source_frames,
                      const std::string &out) {
  const mi_geometry &g = src->geometry;
  const size_t plane = (size_t)g.size[0] * (size_t)g.size[1];
  std::vector<Uint8> buf(plane);  // FRACTIONAL: the frame; BINARY: a blank pixel (packed over later)
  // dcmseg 3.6.7 refuses to encode a SEG with fewer frames than segments
  // ("Invalid Object"), which happens when most segments are empty.  Then
  // every empty segment gets one all-zero frame (on the first slice that has
  // a frame): the SEG stays valid and no voxel changes.
  size_t total = 0;
  int64_t pad_k = -1;
  std::vector<bool> empty(n_segments + 1, true);
  for (size_t s = 1; s <= n_segments; ++s)
    for (int64_t k = 0; k < g.size[2]; ++k)
      if (frames.present(s, k)) {
        ++total;
        empty[s] = false;
        if (pad_k < 0 || k < pad_k) pad_k = k;
      }
  const bool padding = total < n_segments;
  if (pad_k < 0) pad_k = 0;
  for (size_t s = 1; s <= n_segments; ++s) {  // segment-major, then position: the dimension order
    for (int64_t k = 0; k < g.size[2]; ++k) {
      const bool pad = padding && empty[s] && k == pad_k;
      if (!pad && !frames.present(s, k)) continue;
      if (!binary) {
        if (pad) std::fill(buf.begin(), buf.end(), 0);
        else frames.fill(s, k, buf.data());
      }
      order.push_back({s, pad ? -1 : k});
      const auto &sl = src->slices[(size_t)k];
      FGPlanePosPatient pos;
      pos.setImagePositionPatient(ds(sl.ipp[0]).c_str(), ds(sl.ipp[1]).c_str(), ds(sl.ipp[2]).c_str());
      FGFrameContent content;
      content.setDimensionIndexValues((Uint32)s, 0);
      content.setDimensionIndexValues((Uint32)(k + 1), 1);
      std::unique_ptr<FGDerivationImage> deriv(new FGDerivationImage);
      DerivationImageItem *item = nullptr;
      MI_TRY(cond(deriv->addDerivationImageItem(CodeSequenceMacro("113076", "DCM", "Segmentation"), "", item),
                  "adding a derivation image item", out));
      SourceImageItem *source = new SourceImageItem;
      item->getSourceImageItems().push_back(source);
      source->getPurposeOfReferenceCode().set("121322", "DCM", "Source image for image processing operation");
      ImageSOPInstanceReferenceMacro &ref = source->getImageSOPInstanceReference();
      ref.setReferencedSOPClassUID(sl.sop_class_uid.c_str());
      ref.setReferencedSOPInstanceUID(sl.sop_instance_uid.c_str());
      source_frames.push_back(sl.frame);
      OFVector<FGBase *> groups;
      groups.push_back(&pos);
      groups.push_back(&content);
      groups.push_back(deriv.get());
      MI_TRY(cond(seg.addFrame(buf.data(), (Uint16)s, groups), "adding a frame", out));
    }
  }
  return nullptr;
}

// The encoded dataset's dimensions, and its Pixel Data as a stream of the
// BINARY frames' bits, read while the file is written (seg_bits.h).
mi_status *binary_pixel_data(DcmDataset &ds, const FrameSource &frames, const std::vector<FrameRef> &order,
                             const mi_geometry &g, const std::string &out) {
  const size_t plane = (size_t)g.size[0] * (size_t)g.size[1];
  const size_t bytes = binary_pixel_data_bytes(order.size(), plane);
  if (bytes > 0xFFFFFFFEu)
    return mi_error(MI_ERR_UNSUPPORTED, "dicom: %s: %zu frames of %zu pixels exceed Pixel Data's 4 GB", out.c_str(),
                    order.size(), plane);
  MI_TRY(cond(ds.putAndInsertUint16(DCM_Rows, (Uint16)g.size[1]), "setting Rows", out));
  MI_TRY(cond(ds.putAndInsertUint16(DCM_Columns, (Uint16)g.size[0]), "setting Columns", out));
  std::unique_ptr<DcmPixelData> px(new DcmPixelData(DcmTag(DCM_PixelData, EVR_OB)));
  std::unique_ptr<DcmInputStreamFactory> stream(binary_pixel_data_stream(frames, order, plane));
  MI_TRY(cond(px->createValueFromTempFile(stream.get(), (Uint32)bytes, EBO_LittleEndian), "streaming Pixel Data", out));
  stream.release();  // the element's now
  MI_TRY(cond(ds.insert(px.get(), OFTrue /* replace dcmseg's */), "inserting Pixel Data", out));
  px.release();
  return nullptr;
}

// Multi-frame sources are referenced per frame.  DCMTK 3.6.7 formats
// ReferencedFrameNumber with a leading blank that its own IS check rejects,
// so the numbers go into the encoded dataset directly.
mi_status *add_frame_numbers(DcmDataset &ds, const std::vector<int32_t> &source_frames, const std::string &out) {
  for (size_t i = 0; i < source_frames.size(); ++i) {
    if (source_frames[i] <= 0) continue;
    DcmItem *pf = nullptr, *deriv = nullptr, *src = nullptr;
    if (ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, pf, (int)i).bad() ||
        pf->findAndGetSequenceItem(DCM_DerivationImageSequence, deriv, 0).bad() ||
        deriv->findAndGetSequenceItem(DCM_SourceImageSequence, src, 0).bad() ||
        src->putAndInsertString(DCM_ReferencedFrameNumber, std::to_string(source_frames[i]).c_str()).bad())
      return mi_error(MI_ERR_INTERNAL, "dicom: %s: cannot reference source frame of SEG frame %zu", out.c_str(), i + 1);
  }
  return nullptr;
}

mi_status *write(const mi_dicom_volume *src, const FrameSource &frames, const mi_seg_segment *segs, size_t n,
                 const mi_seg_options *opts_in, const char *out_path) {
  if (!src || !segs || n == 0 || !out_path || !*out_path)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_write_seg: source, segments and output path are required");
  if (n > 65535) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_write_seg: %zu segments (at most 65535)", n);
  const std::string out = out_path;
  if (!src->header) return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: source volume has no DICOM header", out_path);
  const mi_geometry &g = src->geometry;
  if (g.size[0] > 65535 || g.size[1] > 65535)
    return mi_error(MI_ERR_SHAPE, "dicom: %s: frames of %lld x %lld are too large", out_path, (long long)g.size[0],
                    (long long)g.size[1]);
  MI_TRY(check_output(src, out, "segmentation"));
  mi_seg_options o;
  mi_seg_options_init(&o);
  if (opts_in) {
    o.fractional = opts_in->fractional;
    if (opts_in->series_description) o.series_description = opts_in->series_description;
    if (opts_in->series_number > 0) o.series_number = opts_in->series_number;
    if (opts_in->content_label) o.content_label = opts_in->content_label;
    if (opts_in->content_creator) o.content_creator = opts_in->content_creator;
  }
  MI_TRY(frames.validate(n, out));

  IODGeneralEquipmentModule::EquipmentInfo equipment("medinfer", "medinfer", "0", MEDINFER_VERSION);
  ContentIdentificationMacro content("1", o.content_label, "", o.content_creator);
  DcmSegmentation *raw = nullptr;
  OFCondition c = o.fractional
                      ? DcmSegmentation::createFractionalSegmentation(
                            raw, (Uint16)g.size[1], (Uint16)g.size[0],
                            o.fractional == 2 ? DcmSegTypes::SFT_OCCUPANCY : DcmSegTypes::SFT_PROBABILITY, 255,
                            equipment, content)
                      : DcmSegmentation::createBinarySegmentation(raw, (Uint16)g.size[1], (Uint16)g.size[0], equipment,
                                                                  content);
  std::unique_ptr<DcmSegmentation> seg(raw);
  if (c.bad() || !seg) return cond(c.bad() ? c : EC_IllegalCall, "creating the segmentation", out);
  // dcmseg re-validates every functional group of every frame on write; ours
  // are built above from checked values, and the check is quadratic in frames.
  seg->setCheckFGOnWrite(OFFalse);
  seg->setCheckDimensionsOnWrite(OFFalse);
  MI_TRY(describe(*seg, src, o, out));
  MI_TRY(add_segments(*seg, segs, n, out));
  MI_TRY(add_references(*seg, src, out));
  MI_TRY(add_shared_groups(*seg, src, out));
  const OFString dim_uid = new_uid().c_str();
  MI_TRY(cond(seg->getDimensions().addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid,
                                                     DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber"),
              "adding the segment dimension", out));
  MI_TRY(cond(seg->getDimensions().addDimensionIndex(DCM_ImagePositionPatient, dim_uid, DCM_PlanePositionSequence,
                                                     "ImagePositionPatient"),
              "adding the position dimension", out));
  const bool binary = !o.fractional;
  std::vector<FrameRef> order;
  std::vector<int32_t> source_frames;
  DcmFileFormat ff;
  {
    std::unique_ptr<OnePixelFrames> one_pixel(binary ? new OnePixelFrames(*seg) : nullptr);
    MI_TRY(add_frames(*seg, src, frames, n, binary, order, source_frames, out));
    MI_TRY(cond(seg->writeDataset(*ff.getDataset()), "encoding the segmentation", out));
  }
  if (binary) MI_TRY(binary_pixel_data(*ff.getDataset(), frames, order, g, out));
  MI_TRY(add_frame_numbers(*ff.getDataset(), source_frames, out));
  // Atomic: a reader never sees a half-written SEG, a failure leaves nothing.
  return save_atomic(ff, out);
}

mi_status *guarded(const mi_dicom_volume *src, const FrameSource &frames, const mi_seg_segment *segs, size_t n,
                   const mi_seg_options *opts, const char *out) {
  try {
    return write(src, frames, segs, n, opts, out);
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "dicom: %s: out of memory writing the segmentation", out ? out : "");
  } catch (const std::exception &e) {
    return mi_error(MI_ERR_INTERNAL, "dicom: %s: %s", out ? out : "", e.what());
  }
}

}  // namespace


extern "C" {

void mi_seg_options_init(mi_seg_options *o) {
  if (!o) return;
  std::memset(o, 0, sizeof *o);
  o->series_description = "Segmentation";
  o->series_number = 300;
  o->content_label = "MEDINFER";
  o->content_creator = "medinfer^";  // PN: family name component
}

void mi_seg_rgb_to_dicom_lab(const uint8_t rgb[3], uint16_t lab[3]) {
  double L, a, b;
  IODCIELabUtil::rgb2DicomLab(L, a, b, rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0);
  const double v[3] = {L, a, b};
  for (int i = 0; i < 3; ++i) lab[i] = (uint16_t)std::lround(std::min(65535.0, std::max(0.0, v[i])));
}

mi_status *mi_dicom_write_seg_labelmap(const mi_dicom_volume *source, const uint8_t *labels,
                                       const mi_seg_segment *segments, size_t n_segments, const mi_seg_options *opts,
                                       const char *out_path) {
  if (!source || !labels) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_write_seg_labelmap: no source or labels");
  LabelmapFrames frames(source->geometry, labels);
  return guarded(source, frames, segments, n_segments, opts, out_path);
}

mi_status *mi_dicom_write_seg_masks(const mi_dicom_volume *source, const float *const *masks,
                                    const mi_seg_segment *segments, size_t n_segments, const mi_seg_options *opts,
                                    const char *out_path) {
  if (!source || !masks) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_write_seg_masks: no source or masks");
  MaskFrames frames(source->geometry, masks, opts && opts->fractional);
  return guarded(source, frames, segments, n_segments, opts, out_path);
}

}  // extern "C"
