// Detections as a DICOM Comprehensive 3D SR measurement report (TID 1500) on
// DCMTK's dcmsr/cmr template classes.
//
// Each finding is one Volumetric ROI measurement group (TID 1411): its extent
// is a volume, so the planar template (TID 1410) would only hold one section
// of it.  The box goes in as a Volume Surface SCOORD3D ELLIPSOID whose three
// axes are the box's half-axes: the ellipsoid is inscribed in the box and the
// box is its bounding box, so the box is stored without loss in one item that
// TID 1411 allows (a POLYGON of the centre plane, TID 1410's choice, would
// drop the third extent).  The images the box crosses are the group's "Source
// image for segmentation" references (the centre slice always among them).
//
// The score is a TID 1419 measurement named (DCM 111012, "Certainty of
// Finding") in percent: the concept DICOM's CAD templates (TID 4104/4108)
// use for how certain a detector is of a finding, 0..100; CID 7469 is
// extensible, so it is a valid concept there, and TID 4019 beside it names the
// algorithm that produced it.
//
// dcmsr/cmr 3.6.7 has no setters for TID 1411's Volume Surface, Source image
// for segmentation and Finding Category rows; they are added to the expanded
// document tree next to the rows the template classes wrote.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmsr/cmr/tid1500.h>
#include <dcmtk/dcmsr/codes/dcm.h>
#include <dcmtk/dcmsr/codes/sct.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "internal.h"

#ifndef MEDINFER_VERSION
#define MEDINFER_VERSION "0"
#endif

using namespace mi_dicom;

namespace {

const DSRBasicCodedEntry kFindingCategory("276214006", "SCT", "Finding category");

struct Vec {
  double x, y, z;
};
Vec vec(const double v[3]) { return {v[0], v[1], v[2]}; }
double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Vec cross(Vec a, Vec b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
Vec sub(Vec a, Vec b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
double norm(Vec a) { return std::sqrt(dot(a, a)); }

mi_status *cond(const OFCondition &c, const char *what, const std::string &out) {
  if (c.good()) return nullptr;
  return mi_error(MI_ERR_INTERNAL, "dicom: %s: %s failed (%s)", out.c_str(), what, c.text());
}

bool given(const char *s) { return s && *s; }

// Unit normal of the source's image planes (row x column direction).
Vec plane_normal(const mi_dicom_volume *src) {
  const double *d = src->geometry.direction;  // columns: row dir, column dir, stacking dir
  Vec n = cross({d[0], d[3], d[6]}, {d[1], d[4], d[7]});
  double l = norm(n);
  return {n.x / l, n.y / l, n.z / l};
}

// Slices whose plane meets the box: |n.(c - p)| <= sum |n.axis|.  Holds for
// any parallelepiped and any plane, so oblique and tilted series too.
std::vector<size_t> slices_crossed(const mi_dicom_volume *src, const mi_sr_finding &f) {
  const Vec n = plane_normal(src), c = vec(f.center);
  double reach = 0;
  for (int a = 0; a < 3; ++a) reach += std::fabs(dot(n, vec(f.half_axes[a])));
  std::vector<size_t> ks;
  for (size_t k = 0; k < src->slices.size(); ++k)
    if (k == (size_t)f.center_slice || std::fabs(dot(n, sub(c, vec(src->slices[k].ipp)))) <= reach + 1e-6) ks.push_back(k);
  return ks;
}

mi_status *check_finding(const mi_dicom_volume *src, const mi_sr_finding &f, size_t i, const std::string &out) {
  const char *o = out.c_str();
  const size_t no = i + 1;
  if (!given(f.type_scheme) || !given(f.type_value) || !given(f.type_meaning))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu lacks its type code", o, no);
  const int cat = given(f.category_scheme) + given(f.category_value) + given(f.category_meaning);
  if (cat != 0 && cat != 3)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu has an incomplete category code", o, no);
  if (!given(f.tracking_id) || std::strlen(f.tracking_id) > 64)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu needs a tracking identifier of 1 to 64 characters",
                    o, no);
  if (f.tracking_uid && DcmUniqueIdentifier::checkStringValue(f.tracking_uid, "1").bad())
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s'): tracking UID '%s' is not a valid UID", o,
                    no, f.tracking_id, f.tracking_uid);
  if (!(f.score >= 0.0 && f.score <= 1.0))  // also refuses NaN
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s'): score %g is not in [0, 1]", o, no,
                    f.tracking_id, f.score);
  for (int a = 0; a < 3; ++a) {
    bool finite = std::isfinite(f.center[a]);
    for (int b = 0; b < 3; ++b) finite = finite && std::isfinite(f.half_axes[a][b]);
    if (!finite)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s'): centre or box is not finite", o, no,
                      f.tracking_id);
  }
  // An ellipsoid's axes are perpendicular and not empty (PS3.3 C.18.9.1.2).
  for (int a = 0; a < 3; ++a) {
    const Vec u = vec(f.half_axes[a]);
    if (norm(u) < 1e-6)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s'): half-axis %d is zero", o, no,
                      f.tracking_id, a);
    for (int b = a + 1; b < 3; ++b) {
      const Vec v = vec(f.half_axes[b]);
      if (std::fabs(dot(u, v)) > 1e-6 * norm(u) * norm(v))
        return mi_error(MI_ERR_INVALID_ARGUMENT,
                        "dicom: %s: finding %zu ('%s'): half-axes %d and %d are not perpendicular", o, no,
                        f.tracking_id, a, b);
    }
  }
  if (f.center_slice < 0 || (size_t)f.center_slice >= src->slices.size())
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s'): slice %lld is not in 0..%zu", o, no,
                    f.tracking_id, (long long)f.center_slice, src->slices.size() - 1);
  // The slice referenced as "through the centre" must be the nearest one.
  const Vec n = plane_normal(src), c = vec(f.center);
  const double mine = std::fabs(dot(n, sub(c, vec(src->slices[(size_t)f.center_slice].ipp))));
  for (size_t k = 0; k < src->slices.size(); ++k)
    if (std::fabs(dot(n, sub(c, vec(src->slices[k].ipp)))) + 1e-3 < mine)
      return mi_error(MI_ERR_INVALID_ARGUMENT,
                      "dicom: %s: finding %zu ('%s'): slice %lld is %.3f mm from the centre, slice %zu is nearer", o,
                      no, f.tracking_id, (long long)f.center_slice, mine, k);
  return nullptr;
}

DSRImageReferenceValue image_ref(const mi_dicom_volume::Slice &s) {
  DSRImageReferenceValue ref(s.sop_class_uid.c_str(), s.sop_instance_uid.c_str());
  if (s.frame > 0) ref.getFrameList().addItem(s.frame);
  return ref;
}

// The ellipsoid's six points: major axis ends, then the two minor axes
// (PS3.3 C.18.9.1.2 orders them by length).
DSRSpatialCoordinates3DValue volume_surface(const mi_sr_finding &f, const std::string &frame_of_reference) {
  int order[3] = {0, 1, 2};
  std::stable_sort(order, order + 3,
                   [&](int a, int b) { return norm(vec(f.half_axes[a])) > norm(vec(f.half_axes[b])); });
  DSRSpatialCoordinates3DValue v(DSRTypes::GT3_Ellipsoid);
  for (int a : order)
    for (int sign : {1, -1})
      v.getGraphicDataList().addItem((Float32)(f.center[0] + sign * f.half_axes[a][0]),
                                     (Float32)(f.center[1] + sign * f.half_axes[a][1]),
                                     (Float32)(f.center[2] + sign * f.half_axes[a][2]));
  v.setFrameOfReferenceUID(frame_of_reference.c_str(), OFFalse);
  return v;
}

struct Options {
  std::string series_description = "Detections", algorithm_name = "medinfer", algorithm_version = MEDINFER_VERSION,
              content_label = "MEDINFER";
  int series_number = 400;
};

// The template part: title, language, observer, procedure, one TID 1411
// group per finding with tracking, finding type and score.
mi_status *build_report(TID1500_MeasurementReport &report, const mi_dicom_volume *src, const mi_sr_finding *f, size_t n,
                        const std::vector<std::string> &tracking_uids, const Options &o, const std::string &out) {
  MI_TRY(cond(report.createNewMeasurementReport(CMR_CID7021::ImagingMeasurementReport), "creating the report", out));
  MI_TRY(cond(report.setLanguage(CID5000_Languages::English), "setting the language", out));
  // The observer is the detector: a device (TID 1004) named by the content label.
  MI_TRY(cond(report.getObservationContext().addDeviceObserver(new_uid().c_str(), o.content_label.c_str(), "medinfer",
                                                                o.algorithm_name.c_str()),
              "setting the device observer", out));
  const std::string modality = mi_dicom_volume_attribute(src, "Modality");
  const CID100_QuantitativeDiagnosticImagingProcedures procedure =
      modality == "CT"   ? CMR_CID100::CTUnspecifiedBodyRegion
      : modality == "MR" ? CMR_CID100::MRIUnspecifiedBodyRegion
                         : CMR_CID100::ImagingProcedure;
  MI_TRY(cond(report.addProcedureReported(procedure), "adding the procedure reported", out));
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) MI_TRY(cond(report.addVolumetricROIMeasurements(OFFalse), "adding a measurement group", out));
    CMR_TID1411_in_TID1500 &group = report.getVolumetricROIMeasurements();
    MI_TRY(cond(group.setTrackingIdentifier(f[i].tracking_id), "setting a tracking identifier", out));
    MI_TRY(cond(group.setTrackingUniqueIdentifier(tracking_uids[i].c_str()), "setting a tracking UID", out));
    MI_TRY(cond(group.setFinding(DSRCodedEntryValue(f[i].type_value, f[i].type_scheme, f[i].type_meaning)),
                "setting a finding type", out));
    const CMR_TID1411_in_TID1500::MeasurementValue score(format_ds(f[i].score * 100.0).c_str(),
                                                         CMR_CID7181::Percent);
    MI_TRY(cond(group.addMeasurement(DSRCodedEntryValue(CODE_DCM_CertaintyOfFinding), score), "adding a score", out));
    MI_TRY(cond(group.getMeasurement().setAlgorithmIdentification(o.algorithm_name.c_str(),
                                                                  o.algorithm_version.c_str()),
                "setting the algorithm identification", out));
  }
  return nullptr;
}

// Rows dcmsr/cmr has no setters for, added to each expanded group in order:
// Finding Category after Finding, then the source images and the surface.
mi_status *add_regions(DSRDocumentTree &tree, const mi_dicom_volume *src, const mi_sr_finding *f, size_t n,
                       const std::string &frame_of_reference, const std::string &out) {
  std::vector<size_t> groups;
  for (size_t id = tree.gotoNamedNode(CODE_DCM_MeasurementGroup); id > 0;
       id = tree.gotoNextNamedNode(CODE_DCM_MeasurementGroup))
    groups.push_back(id);
  if (groups.size() != n)
    return mi_error(MI_ERR_INTERNAL, "dicom: %s: %zu measurement groups for %zu findings", out.c_str(), groups.size(), n);
  for (size_t i = 0; i < n; ++i) {
    if (tree.gotoNode(groups[i]) == 0 || tree.gotoNamedChildNode(CODE_DCM_Finding) == 0)
      return mi_error(MI_ERR_INTERNAL, "dicom: %s: measurement group %zu has no finding", out.c_str(), i + 1);
    if (given(f[i].category_value)) {
      MI_TRY(cond(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Code, kFindingCategory),
                  "adding a finding category", out));
      MI_TRY(cond(tree.getCurrentContentItem().setCodeValue(
                      DSRCodedEntryValue(f[i].category_value, f[i].category_scheme, f[i].category_meaning)),
                  "setting a finding category", out));
    }
    for (size_t k : slices_crossed(src, f[i])) {
      MI_TRY(cond(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Image, CODE_DCM_SourceImageForSegmentation),
                  "adding a source image", out));
      MI_TRY(cond(tree.getCurrentContentItem().setImageReference(image_ref(src->slices[k])), "referencing an image", out));
    }
    MI_TRY(cond(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_SCoord3D, CODE_DCM_VolumeSurface),
                "adding a volume surface", out));
    MI_TRY(cond(tree.getCurrentContentItem().setSpatialCoordinates3D(volume_surface(f[i], frame_of_reference)),
                "setting a volume surface", out));
  }
  return nullptr;
}

std::string now(bool date) {
  OFString s;
  if (date) DcmDate::getCurrentDate(s);
  else DcmTime::getCurrentTime(s, OFTrue /*seconds*/, OFFalse);
  return s.c_str();
}

mi_status *write(const mi_dicom_volume *src, const mi_sr_finding *f, size_t n, const mi_sr_options *opts,
                 const char *out_path) {
  if (!out_path || !*out_path) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_dicom_write_sr_findings: no output path");
  const std::string out = out_path;
  if (!src || !src->header || src->slices.empty())
    return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: no source volume (or one without DICOM slices)", out_path);
  if (n > 0 && !f) return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: %zu findings but no array", out_path, n);
  const std::string study = mi_dicom_volume_attribute(src, "StudyInstanceUID"),
                    series = mi_dicom_volume_attribute(src, "SeriesInstanceUID"),
                    frame_of_reference = mi_dicom_volume_attribute(src, "FrameOfReferenceUID");
  if (study.empty() || series.empty() || frame_of_reference.empty())
    return mi_error(MI_ERR_INVALID_ARGUMENT,
                    "dicom: %s: the source lacks a Study, Series or Frame of Reference UID; regions need them",
                    out_path);
  Options o;
  if (opts) {
    if (given(opts->series_description)) o.series_description = opts->series_description;
    if (opts->series_number > 0) o.series_number = opts->series_number;
    if (given(opts->algorithm_name)) o.algorithm_name = opts->algorithm_name;
    if (given(opts->algorithm_version)) o.algorithm_version = opts->algorithm_version;
    if (given(opts->content_label)) o.content_label = opts->content_label;
  }
  std::vector<std::string> tracking_uids;
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i) {
    MI_TRY(check_finding(src, f[i], i, out));
    tracking_uids.push_back(f[i].tracking_uid ? f[i].tracking_uid : new_uid());
    if (!seen.insert(tracking_uids.back()).second)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "dicom: %s: finding %zu ('%s') repeats tracking UID %s", out_path, i + 1,
                      f[i].tracking_id, tracking_uids.back().c_str());
  }
  MI_TRY(check_output(src, out, "report"));

  TID1500_MeasurementReport report;
  MI_TRY(build_report(report, src, f, n, tracking_uids, o, out));
  DSRDocument doc(DSRTypes::DT_Comprehensive3DSR);
  MI_TRY(cond(doc.setTreeFromRootTemplate(report), "expanding the report template", out));
  // The template's tree is typed as an Enhanced SR; SCOORD3D needs Comprehensive 3D.
  MI_TRY(cond(doc.changeDocumentType(DSRTypes::DT_Comprehensive3DSR), "making the report Comprehensive 3D SR", out));
  MI_TRY(add_regions(doc.getTree(), src, f, n, frame_of_reference, out));

  // Patient and study from the source (a copy of its modules), new series.
  MI_TRY(cond(doc.readStudyData(*src->header), "copying patient and study", out));
  MI_TRY(cond(doc.createNewSeriesInStudy(study.c_str()), "creating the series", out));
  MI_TRY(cond(doc.setSeriesDescription(o.series_description.c_str()), "setting the series description", out));
  MI_TRY(cond(doc.setSeriesNumber(std::to_string(o.series_number).c_str()), "setting the series number", out));
  MI_TRY(cond(doc.setInstanceNumber("1"), "setting the instance number", out));
  MI_TRY(cond(doc.setManufacturer("medinfer"), "setting the manufacturer", out));
  MI_TRY(cond(doc.setManufacturerModelName(o.algorithm_name.c_str()), "setting the model name", out));
  MI_TRY(cond(doc.setSoftwareVersions(MEDINFER_VERSION), "setting the software version", out));
  MI_TRY(cond(doc.setContentDate(now(true).c_str()), "setting the content date", out));
  MI_TRY(cond(doc.setContentTime(now(false).c_str()), "setting the content time", out));
  MI_TRY(cond(doc.completeDocument(), "completing the document", out));
  // Evidence: every instance of the series the detector looked at, also when
  // it found nothing.
  std::set<std::string> listed;
  for (const auto &s : src->slices)
    if (listed.insert(s.sop_instance_uid).second)
      MI_TRY(cond(doc.getCurrentRequestedProcedureEvidence().addItem(study.c_str(), series.c_str(),
                                                                    s.sop_class_uid.c_str(), s.sop_instance_uid.c_str()),
                  "listing the evidence", out));

  DcmFileFormat ff;
  MI_TRY(cond(doc.write(*ff.getDataset()), "encoding the report", out));
  return save_atomic(ff, out);
}

}  // namespace

extern "C" {

void mi_sr_options_init(mi_sr_options *o) {
  if (!o) return;
  std::memset(o, 0, sizeof *o);
  o->series_description = "Detections";
  o->series_number = 400;
  o->algorithm_name = "medinfer";
  o->algorithm_version = MEDINFER_VERSION;
  o->content_label = "MEDINFER";
}

mi_status *mi_dicom_write_sr_findings(const mi_dicom_volume *source, const mi_sr_finding *findings, size_t n,
                                      const mi_sr_options *opts, const char *out_path) {
  try {
    return write(source, findings, n, opts, out_path);
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "dicom: %s: out of memory writing the report", out_path ? out_path : "");
  } catch (const std::exception &e) {
    return mi_error(MI_ERR_INTERNAL, "dicom: %s: %s", out_path ? out_path : "", e.what());
  }
}

}  // extern "C"
