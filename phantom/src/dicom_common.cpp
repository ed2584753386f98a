// Shared DICOM modules, transfer syntax encoding and atomic saving.
#include "dicom_common.h"

#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <cstdio>
#include <ctime>
#include <mutex>

void phantom_register_codecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    // Raw ("uncooked") JPEG-LS encoding keeps BitsStored and the stored values as they are.
    DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, OFFalse);
  });
}

E_TransferSyntax phantom_xfer(mi_phantom_transfer_syntax ts) {
  switch (ts) {
    case MI_PHANTOM_TS_IMPLICIT_LE: return EXS_LittleEndianImplicit;
    case MI_PHANTOM_TS_EXPLICIT_BE: return EXS_BigEndianExplicit;
    case MI_PHANTOM_TS_DEFLATED: return EXS_DeflatedLittleEndianExplicit;
    case MI_PHANTOM_TS_RLE: return EXS_RLELossless;
    case MI_PHANTOM_TS_JPEG_LOSSLESS: return EXS_JPEGProcess14SV1;
    case MI_PHANTOM_TS_JPEGLS_LOSSLESS: return EXS_JPEGLSLossless;
    default: return EXS_LittleEndianExplicit;
  }
}

mi_status *phantom_put(DcmItem *item, const DcmTagKey &tag, const std::string &value, const std::string &path) {
  OFCondition c = item->putAndInsertString(tag, value.c_str());
  if (c.bad())
    return mi_error(MI_ERR_INTERNAL, "%s: cannot set %s to \"%s\": %s", path.c_str(), DcmTag(tag).getTagName(),
                    value.c_str(), c.text());
  return nullptr;
}

std::string phantom_ds_list(const double *v, int n) {
  std::string s;
  for (int i = 0; i < n; i++) s += (i ? "\\" : "") + phantom_ds(v[i]);
  return s;
}

mi_status *phantom_put_common(DcmDataset *ds, const mi_phantom *p, const char *sop_class, const char *sop_uid,
                              const std::string &path) {
  char date[16], tm_s[16];
  std::time_t now = std::time(nullptr);
  std::tm t{};
  localtime_r(&now, &t);
  std::strftime(date, sizeof date, "%Y%m%d", &t);
  std::strftime(tm_s, sizeof tm_s, "%H%M%S", &t);
  const bool ct = p->options.modality == MI_PHANTOM_CT;
  char desc[128];
  std::snprintf(desc, sizeof desc, "medinfer phantom seed %llu", (unsigned long long)p->options.seed);
  const std::pair<DcmTagKey, std::string> attrs[] = {
      {DCM_SpecificCharacterSet, "ISO_IR 100"},
      {DCM_SOPClassUID, sop_class},
      {DCM_SOPInstanceUID, sop_uid},
      {DCM_InstanceCreationDate, date},
      {DCM_InstanceCreationTime, tm_s},
      // Patient
      {DCM_PatientName, p->patient_name},
      {DCM_PatientID, p->patient_id},
      {DCM_PatientBirthDate, ""},
      {DCM_PatientSex, "O"},
      // General Study
      {DCM_StudyInstanceUID, p->study_uid},
      {DCM_StudyDate, date},
      {DCM_StudyTime, tm_s},
      {DCM_ReferringPhysicianName, ""},
      {DCM_StudyID, "1"},
      {DCM_AccessionNumber, ""},
      {DCM_StudyDescription, "medinfer synthetic torso phantom"},
      // General Series
      {DCM_Modality, ct ? "CT" : "MR"},
      {DCM_SeriesInstanceUID, p->series_uid},
      {DCM_SeriesNumber, "1"},
      {DCM_SeriesDate, date},
      {DCM_SeriesTime, tm_s},
      {DCM_SeriesDescription, desc},
      {DCM_PatientPosition, "HFS"},
      {DCM_BodyPartExamined, "CHESTABDOMEN"},  // unpaired: Laterality stays absent
      // Frame of Reference
      {DCM_FrameOfReferenceUID, p->frame_of_reference_uid},
      {DCM_PositionReferenceIndicator, ""},
      // General Equipment (+ Enhanced General Equipment's type 1 attributes)
      {DCM_Manufacturer, "medinfer"},
      {DCM_ManufacturerModelName, "phantom"},
      {DCM_DeviceSerialNumber, "0"},
      {DCM_SoftwareVersions, "medinfer 0.1"},
      {DCM_ContentDate, date},
      {DCM_ContentTime, tm_s},
  };
  for (const auto &a : attrs) MI_TRY(phantom_put(ds, a.first, a.second, path));
  return nullptr;
}

void phantom_stored_slice(const mi_phantom *p, int64_t k, uint16_t *out) {
  const size_t n = (size_t)(p->geometry.size[0] * p->geometry.size[1]);
  const int16_t *v = p->values + n * (size_t)k;
  const int off = (int)-p->rescale_intercept;  // values are already clamped to the stored range
  for (size_t i = 0; i < n; i++) out[i] = (uint16_t)(v[i] + off);
}

mi_status *phantom_save(DcmFileFormat &ff, const mi_phantom *p, const std::string &path) {
  phantom_register_codecs();
  DcmDataset *ds = ff.getDataset();
  const E_TransferSyntax xfer = phantom_xfer(p->options.transfer_syntax);
  OFCondition c = EC_Normal;
  DcmRLERepresentationParameter rle;
  DJ_RPLossless jpeg(1, 0);  // first-order prediction, no point transform: SV1 lossless
  DJLSRepresentationParameter jpls(0, OFTrue);
  switch (p->options.transfer_syntax) {
    case MI_PHANTOM_TS_RLE: c = ds->chooseRepresentation(xfer, &rle); break;
    case MI_PHANTOM_TS_JPEG_LOSSLESS: c = ds->chooseRepresentation(xfer, &jpeg); break;
    case MI_PHANTOM_TS_JPEGLS_LOSSLESS: c = ds->chooseRepresentation(xfer, &jpls); break;
    default: break;
  }
  if (c.bad() || !ds->canWriteXfer(xfer))
    return mi_error(MI_ERR_UNSUPPORTED, "%s: cannot encode in transfer syntax %s: %s", path.c_str(),
                    mi_phantom_transfer_syntax_uid(p->options.transfer_syntax), c.bad() ? c.text() : "no encoder");
  const std::string tmp = phantom_temp_name(path);
  c = ff.saveFile(tmp.c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, EWM_updateMeta);
  if (c.bad()) {
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "%s: cannot write: %s", path.c_str(), c.text());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return mi_error(MI_ERR_IO, "%s: cannot rename into place", path.c_str());
  }
  return nullptr;
}
