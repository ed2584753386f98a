// Enhanced CT Image Storage: the whole volume in one multi-frame instance with
// shared (pixel measures, orientation, rescale, frame type) and per-frame
// (frame content, plane position) functional groups.  Built directly with
// dcmdata: dcmfg/dcmiod would add a dependency for ~20 attributes.
#include <dcmtk/dcmdata/dcuid.h>

#include "dicom_common.h"

namespace {

struct Put {
  const std::string &path;
  mi_status *st = nullptr;
  // Record only the first failure; later calls become no-ops.
  void s(DcmItem *item, const DcmTagKey &tag, const std::string &v) {
    if (!st) st = phantom_put(item, tag, v, path);
  }
  DcmItem *item(DcmItem *parent, const DcmTagKey &seq) {
    DcmItem *it = nullptr;
    if (st) return nullptr;
    OFCondition c = parent->findOrCreateSequenceItem(seq, it, -2);
    if (c.bad() || !it)
      st = mi_error(MI_ERR_INTERNAL, "%s: cannot add an item to %s: %s", path.c_str(), DcmTag(seq).getTagName(),
                    c.text());
    return it;
  }
  void at(DcmItem *item, const DcmTagKey &tag, const DcmTagKey &value) {
    if (st) return;
    OFCondition c = item->putAndInsertTagKey(tag, value);
    if (c.bad()) st = mi_error(MI_ERR_INTERNAL, "%s: cannot set %s: %s", path.c_str(), DcmTag(tag).getTagName(), c.text());
  }
};

}  // namespace

mi_status *phantom_write_enhanced(const mi_phantom *p, const std::string &dir, int64_t *written) {
  const std::string path = dir + "/ENHANCED.dcm";
  const mi_geometry &g = p->geometry;
  const int64_t nz = g.size[2];
  DcmFileFormat ff;
  DcmDataset *ds = ff.getDataset();
  MI_TRY(phantom_put_common(ds, p, UID_EnhancedCTImageStorage, p->sop_instance_uids[0], path));
  Put put{path};
  // DERIVED (it is synthetic) also spares the CT acquisition/reconstruction
  // functional groups that ORIGINAL frames require.
  const char *type = "DERIVED\\PRIMARY\\VOLUME\\NONE";
  put.s(ds, DCM_ImageType, type);
  put.s(ds, DCM_InstanceNumber, "1");
  put.s(ds, DCM_ContentQualification, "RESEARCH");
  put.s(ds, DCM_PixelPresentation, "MONOCHROME");
  put.s(ds, DCM_VolumetricProperties, "VOLUME");
  put.s(ds, DCM_VolumeBasedCalculationTechnique, "NONE");
  put.s(ds, DCM_AcquisitionNumber, "1");
  put.s(ds, DCM_BurnedInAnnotation, "NO");
  put.s(ds, DCM_LossyImageCompression, "00");
  put.s(ds, DCM_PresentationLUTShape, "IDENTITY");
  put.s(ds, DCM_NumberOfFrames, std::to_string((long long)nz));
  put.s(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
  // Tilt shows in IOP/IPP; GantryDetectorTilt belongs to a CT acquisition
  // functional group whose other type 1 attributes a phantom cannot honestly fill.
  ds->insertEmptyElement(DCM_AcquisitionContextSequence);

  // Dimensions: stack, then position in stack (what viewers sort by).
  char dim_uid[100];
  dcmGenerateUniqueIdentifier(dim_uid, SITE_INSTANCE_UID_ROOT);
  put.s(put.item(ds, DCM_DimensionOrganizationSequence), DCM_DimensionOrganizationUID, dim_uid);
  put.s(ds, DCM_DimensionOrganizationType, "3D");
  const DcmTagKey dims[2] = {DCM_StackID, DCM_InStackPositionNumber};
  for (const auto &d : dims) {
    DcmItem *it = put.item(ds, DCM_DimensionIndexSequence);
    if (!it) break;
    put.s(it, DCM_DimensionOrganizationUID, dim_uid);
    put.at(it, DCM_DimensionIndexPointer, d);
    put.at(it, DCM_FunctionalGroupPointer, DCM_FrameContentSequence);
  }

  DcmItem *shared = put.item(ds, DCM_SharedFunctionalGroupsSequence);
  double iop[6];
  mi_phantom_orientation_patient(p, iop);
  const double ps[2] = {g.spacing[1], g.spacing[0]};
  if (shared) {
    DcmItem *pm = put.item(shared, DCM_PixelMeasuresSequence);
    put.s(pm, DCM_PixelSpacing, phantom_ds_list(ps, 2));
    put.s(pm, DCM_SliceThickness, phantom_ds(g.spacing[2]));
    put.s(put.item(shared, DCM_PlaneOrientationSequence), DCM_ImageOrientationPatient, phantom_ds_list(iop, 6));
    DcmItem *pv = put.item(shared, DCM_PixelValueTransformationSequence);
    put.s(pv, DCM_RescaleIntercept, phantom_ds(p->rescale_intercept));
    put.s(pv, DCM_RescaleSlope, phantom_ds(p->rescale_slope));
    put.s(pv, DCM_RescaleType, "HU");
    DcmItem *ft = put.item(shared, DCM_CTImageFrameTypeSequence);
    put.s(ft, DCM_FrameType, type);
    put.s(ft, DCM_PixelPresentation, "MONOCHROME");
    put.s(ft, DCM_VolumetricProperties, "VOLUME");
    put.s(ft, DCM_VolumeBasedCalculationTechnique, "NONE");
    DcmItem *voi = put.item(shared, DCM_FrameVOILUTSequence);
    put.s(voi, DCM_WindowCenter, "40");
    put.s(voi, DCM_WindowWidth, "400");
    DcmItem *fa = put.item(shared, DCM_FrameAnatomySequence);
    put.s(fa, DCM_FrameLaterality, "U");  // unpaired region
    DcmItem *region = put.item(fa, DCM_AnatomicRegionSequence);
    put.s(region, DCM_CodeValue, "416550000");
    put.s(region, DCM_CodingSchemeDesignator, "SCT");
    put.s(region, DCM_CodeMeaning, "Chest and Abdomen");
    char ev_uid[100];
    dcmGenerateUniqueIdentifier(ev_uid, SITE_INSTANCE_UID_ROOT);
    put.s(put.item(shared, DCM_IrradiationEventIdentificationSequence), DCM_IrradiationEventUID, ev_uid);
  }
  // Frame f holds slice k; reversed order stores the last slice first.
  for (int64_t f = 0; f < nz && !put.st; f++) {
    const int64_t k = p->options.reverse_slices ? nz - 1 - f : f;
    DcmItem *pf = put.item(ds, DCM_PerFrameFunctionalGroupsSequence);
    DcmItem *fc = put.item(pf, DCM_FrameContentSequence);
    put.s(fc, DCM_StackID, "1");
    put.s(fc, DCM_InStackPositionNumber, std::to_string((long long)(f + 1)));
    put.s(fc, DCM_DimensionIndexValues, "1\\" + std::to_string((long long)(f + 1)));
    double ipp[3];
    mi_phantom_slice_position(p, k, ipp);
    put.s(put.item(pf, DCM_PlanePositionSequence), DCM_ImagePositionPatient, phantom_ds_list(ipp, 3));
  }
  if (put.st) return put.st;

  const size_t n = (size_t)(g.size[0] * g.size[1]);
  std::vector<uint16_t> pix(n * (size_t)nz);
  for (int64_t f = 0; f < nz; f++)
    phantom_stored_slice(p, p->options.reverse_slices ? nz - 1 - f : f, pix.data() + n * (size_t)f);
  OFCondition c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  if (c.good()) c = ds->putAndInsertUint16(DCM_Rows, (Uint16)g.size[1]);
  if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, (Uint16)g.size[0]);
  if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, 12);
  if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, 11);
  if (c.good()) c = ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  if (c.good()) c = ds->putAndInsertUint16Array(DCM_PixelData, pix.data(), (unsigned long)pix.size());
  if (c.bad()) return mi_error(MI_ERR_INTERNAL, "%s: cannot build the image pixel module: %s", path.c_str(), c.text());
  MI_TRY(phantom_save(ff, p, path));
  if (written) *written = 1;
  return nullptr;
}
