// Single-frame series: one CT/MR Image Storage file per slice.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "dicom_common.h"

namespace {

mi_status *modality_module(DcmDataset *ds, const mi_phantom *p, const std::string &path) {
  if (p->options.modality == MI_PHANTOM_CT) {
    MI_TRY(phantom_put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL", path));
    MI_TRY(phantom_put(ds, DCM_KVP, "120", path));
    MI_TRY(phantom_put(ds, DCM_RescaleIntercept, phantom_ds(p->rescale_intercept), path));
    MI_TRY(phantom_put(ds, DCM_RescaleSlope, phantom_ds(p->rescale_slope), path));
    MI_TRY(phantom_put(ds, DCM_RescaleType, "HU", path));
    MI_TRY(phantom_put(ds, DCM_WindowCenter, "40", path));
    MI_TRY(phantom_put(ds, DCM_WindowWidth, "400", path));
    if (p->options.gantry_tilt_deg != 0)
      MI_TRY(phantom_put(ds, DCM_GantryDetectorTilt, phantom_ds(p->options.gantry_tilt_deg), path));
  } else {
    MI_TRY(phantom_put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\OTHER", path));
    MI_TRY(phantom_put(ds, DCM_ScanningSequence, "GR", path));
    MI_TRY(phantom_put(ds, DCM_SequenceVariant, "SP", path));
    MI_TRY(phantom_put(ds, DCM_ScanOptions, "", path));
    MI_TRY(phantom_put(ds, DCM_MRAcquisitionType, "3D", path));
    MI_TRY(phantom_put(ds, DCM_RepetitionTime, "8", path));
    MI_TRY(phantom_put(ds, DCM_EchoTime, "3", path));
    MI_TRY(phantom_put(ds, DCM_EchoTrainLength, "1", path));
    MI_TRY(phantom_put(ds, DCM_MagneticFieldStrength, "1.5", path));
    MI_TRY(phantom_put(ds, DCM_WindowCenter, "500", path));
    MI_TRY(phantom_put(ds, DCM_WindowWidth, "1000", path));
  }
  return nullptr;
}

mi_status *write_slice(const mi_phantom *p, int64_t k, int64_t instance, const std::string &path,
                       std::vector<uint16_t> &buf) {
  const mi_geometry &g = p->geometry;
  DcmFileFormat ff;
  DcmDataset *ds = ff.getDataset();
  const bool ct = p->options.modality == MI_PHANTOM_CT;
  MI_TRY(phantom_put_common(ds, p, ct ? UID_CTImageStorage : UID_MRImageStorage, p->sop_instance_uids[k], path));
  MI_TRY(modality_module(ds, p, path));
  double ipp[3], iop[6];
  mi_phantom_slice_position(p, k, ipp);
  mi_phantom_orientation_patient(p, iop);
  const double ps[2] = {g.spacing[1], g.spacing[0]};  // PixelSpacing is row spacing \ column spacing
  // Slice location: position along the image normal, as scanners report it.
  const double nrm[3] = {iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
                         iop[0] * iop[4] - iop[1] * iop[3]};
  const double loc = ipp[0] * nrm[0] + ipp[1] * nrm[1] + ipp[2] * nrm[2];
  const std::pair<DcmTagKey, std::string> attrs[] = {
      {DCM_InstanceNumber, std::to_string((long long)instance)},
      {DCM_AcquisitionNumber, "1"},
      {DCM_ImagePositionPatient, phantom_ds_list(ipp, 3)},
      {DCM_ImageOrientationPatient, phantom_ds_list(iop, 6)},
      {DCM_PixelSpacing, phantom_ds_list(ps, 2)},
      {DCM_SliceThickness, phantom_ds(g.spacing[2])},
      {DCM_SliceLocation, phantom_ds(loc)},
      {DCM_PhotometricInterpretation, "MONOCHROME2"},
  };
  for (const auto &a : attrs) MI_TRY(phantom_put(ds, a.first, a.second, path));
  // 12 bits stored in 16: CT stored = HU + 1024 covers -1024..3071; MR 0..4095.
  OFCondition c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  if (c.good()) c = ds->putAndInsertUint16(DCM_Rows, (Uint16)g.size[1]);
  if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, (Uint16)g.size[0]);
  if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, 12);
  if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, 11);
  if (c.good()) c = ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  const size_t n = (size_t)(g.size[0] * g.size[1]);
  buf.resize(n);
  phantom_stored_slice(p, k, buf.data());
  if (c.good()) c = ds->putAndInsertUint16Array(DCM_PixelData, buf.data(), (unsigned long)n);
  if (c.bad()) return mi_error(MI_ERR_INTERNAL, "%s: cannot build the image pixel module: %s", path.c_str(), c.text());
  return phantom_save(ff, p, path);
}

}  // namespace

mi_status *phantom_write_classic(const mi_phantom *p, const std::string &dir, int64_t *written) {
  const mi_phantom_options &o = p->options;
  const int64_t nz = p->geometry.size[2];
  std::vector<int64_t> slices;  // slices to write, in file-number order after the shuffle
  for (int64_t k = 0; k < nz; k++)
    if (k != o.missing_slice) slices.push_back(k);
  // File numbers are a seeded shuffle, never monotonic in position, so loaders
  // that sort by name get caught.
  std::vector<int64_t> number(slices.size());
  for (size_t i = 0; i < number.size(); i++) number[i] = (int64_t)i + 1;
  PhantomRng rng(o.seed ^ 0xF11E5ull);
  for (size_t i = number.size(); i > 1; i--) std::swap(number[i - 1], number[rng.next() % i]);
  if (number.size() >= 2) {
    bool up = true, down = true;
    for (size_t i = 1; i < number.size(); i++) up = up && number[i] > number[i - 1], down = down && number[i] < number[i - 1];
    // Swapping the first two breaks monotony for 3+ files (2 files have no non-spatial order).
    if (up || down) std::swap(number[0], number[1]);
  }
  std::vector<std::string> paths(slices.size());
  for (size_t i = 0; i < slices.size(); i++) {
    char name[32];
    std::snprintf(name, sizeof name, "/IM%05lld.dcm", (long long)number[i]);
    paths[i] = dir + name;
  }

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<char> done(slices.size(), 0);
  std::mutex mu;
  mi_status *first_error = nullptr;
  auto work = [&]() {
    std::vector<uint16_t> buf;
    for (size_t i; !failed && (i = next.fetch_add(1)) < slices.size();) {
      const int64_t k = slices[i];
      const int64_t instance = o.reverse_slices ? nz - k : k + 1;
      mi_status *st = write_slice(p, k, instance, paths[i], buf);
      done[i] = st == nullptr;
      if (st) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first_error) first_error = st; else mi_status_free(st);
        failed = true;
      }
    }
  };
  int nt = o.threads > 0 ? o.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  nt = (int)std::min<size_t>((size_t)nt, slices.size());
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; t++) pool.emplace_back(work);
  work();
  for (auto &t : pool) t.join();
  if (first_error) {
    for (size_t i = 0; i < paths.size(); i++)  // leave nothing half-written
      if (done[i]) std::remove(paths[i].c_str());
    return first_error;
  }
  if (written) *written = (int64_t)slices.size();
  return nullptr;
}
