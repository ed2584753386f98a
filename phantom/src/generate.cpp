// mi_phantom_generate: validate options, lay out the grid, voxelise, assign UIDs.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "internal.h"

extern "C" void mi_phantom_options_init(mi_phantom_options *o) {
  std::memset(o, 0, sizeof *o);
  o->seed = 1;
  o->size[0] = 256, o->size[1] = 256, o->size[2] = 120;
  o->orientation = MI_PHANTOM_AXIAL;
  o->oblique_deg[0] = 20, o->oblique_deg[1] = 15;
  o->missing_slice = -1;
  o->transfer_syntax = MI_PHANTOM_TS_EXPLICIT_LE;
  o->modality = MI_PHANTOM_CT;
  o->noise_sigma = -1;
}

extern "C" const char *mi_phantom_transfer_syntax_uid(mi_phantom_transfer_syntax ts) {
  switch (ts) {
    case MI_PHANTOM_TS_EXPLICIT_LE: return "1.2.840.10008.1.2.1";
    case MI_PHANTOM_TS_IMPLICIT_LE: return "1.2.840.10008.1.2";
    case MI_PHANTOM_TS_EXPLICIT_BE: return "1.2.840.10008.1.2.2";
    case MI_PHANTOM_TS_DEFLATED: return "1.2.840.10008.1.2.1.99";
    case MI_PHANTOM_TS_RLE: return "1.2.840.10008.1.2.5";
    case MI_PHANTOM_TS_JPEG_LOSSLESS: return "1.2.840.10008.1.2.4.70";
    case MI_PHANTOM_TS_JPEGLS_LOSSLESS: return "1.2.840.10008.1.2.4.80";
  }
  return "";
}

// Enum fields come from C callers and may hold any int: read them as ints
// (loading an out-of-range enum is undefined in C++).
template <typename E>
static unsigned raw_enum(const E &e) {
  int v;
  static_assert(sizeof(E) == sizeof(int), "enum is int-sized");
  std::memcpy(&v, &e, sizeof v);
  return (unsigned)v;
}

static mi_status *validate(mi_phantom_options &o) {
  static const char *axis[3] = {"columns", "rows", "slices"};
  for (int a = 0; a < 3; a++) {
    if (o.size[a] < 1 || o.size[a] > 2048)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: %s = %lld is outside 1..2048", axis[a], (long long)o.size[a]);
    if (!std::isfinite(o.spacing[a]) || o.spacing[a] < 0 || o.spacing[a] > 100)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: %s spacing %g mm is outside (0, 100] (0 = auto)", axis[a],
                      o.spacing[a]);
  }
  if (o.size[0] * o.size[1] * o.size[2] > (int64_t)1 << 30)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: %lldx%lldx%lld voxels exceeds the 2^30 voxel limit",
                    (long long)o.size[0], (long long)o.size[1], (long long)o.size[2]);
  if (raw_enum(o.orientation) > MI_PHANTOM_OBLIQUE)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: unknown orientation %d", (int)raw_enum(o.orientation));
  if (raw_enum(o.modality) > MI_PHANTOM_MR)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: unknown modality %d", (int)raw_enum(o.modality));
  if (raw_enum(o.transfer_syntax) > MI_PHANTOM_TS_JPEGLS_LOSSLESS)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: unknown transfer syntax %d", (int)raw_enum(o.transfer_syntax));
  if (!std::isfinite(o.gantry_tilt_deg) || std::fabs(o.gantry_tilt_deg) >= 45)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: gantry tilt %g degrees is outside (-45, 45)", o.gantry_tilt_deg);
  if (!std::isfinite(o.oblique_deg[0]) || !std::isfinite(o.oblique_deg[1]))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: oblique angles must be finite");
  if (o.missing_slice != -1 && (o.missing_slice < 1 || o.missing_slice > o.size[2] - 2))
    return mi_error(MI_ERR_INVALID_ARGUMENT,
                    "phantom: missing slice %lld must be -1 or an interior slice 1..%lld (a gap needs neighbours)",
                    (long long)o.missing_slice, (long long)(o.size[2] - 2));
  if (o.lesions < 0 || o.lesions > 64)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: %d lesions is outside 0..64", o.lesions);
  if (o.enhanced && o.modality != MI_PHANTOM_CT)
    return mi_error(MI_ERR_UNSUPPORTED, "phantom: enhanced multi-frame output is implemented for CT only");
  if (o.enhanced && o.missing_slice != -1)
    return mi_error(MI_ERR_UNSUPPORTED, "phantom: a missing slice is only available for single-frame series");
  if (!std::isfinite(o.noise_sigma) || o.noise_sigma > 1000)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: noise sigma %g is not in [0, 1000] (<0 = default)", o.noise_sigma);
  if (o.threads < 0 || o.threads > 256)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: %d threads is outside 0..256", o.threads);
  // Resolve defaults: the grid covers ~400 mm in-plane and ~360 mm across slices.
  if (o.spacing[0] == 0 || o.spacing[1] == 0) {
    double s = 400.0 / (double)(o.size[0] > o.size[1] ? o.size[0] : o.size[1]);
    if (o.spacing[0] == 0) o.spacing[0] = s;
    if (o.spacing[1] == 0) o.spacing[1] = s;
  }
  if (o.spacing[2] == 0) o.spacing[2] = 360.0 / (double)o.size[2];
  if (o.noise_sigma < 0) o.noise_sigma = o.modality == MI_PHANTOM_MR ? 15 : 12;
  return nullptr;
}

static void rotate(double v[3], int axis, double deg) {
  const double t = deg * M_PI / 180, c = std::cos(t), s = std::sin(t);
  const int a = (axis + 1) % 3, b = (axis + 2) % 3;
  const double x = v[a], y = v[b];
  v[a] = c * x - s * y;
  v[b] = s * x + c * y;
}

// Row, column and stacking directions, then the grid centred on the anatomy.
static void layout(const mi_phantom_options &o, mi_geometry &g) {
  double r[3] = {1, 0, 0}, c[3] = {0, 1, 0}, n[3] = {0, 0, 1};
  switch (o.orientation) {
    case MI_PHANTOM_CORONAL: c[1] = 0, c[2] = -1, n[1] = 1, n[2] = 0; break;
    case MI_PHANTOM_SAGITTAL: r[0] = 0, r[1] = 1, c[1] = 0, c[2] = -1, n[0] = -1, n[2] = 0; break;
    case MI_PHANTOM_OBLIQUE:
      for (double *v : {r, c, n}) rotate(v, 0, o.oblique_deg[0]), rotate(v, 2, o.oblique_deg[1]);
      break;
    default: break;
  }
  if (o.gantry_tilt_deg != 0) {
    // The gantry tilts the image plane about the row axis; the table still
    // moves along n, so slices shear and IOP is no longer normal to n.
    const double t = o.gantry_tilt_deg * M_PI / 180;
    for (int a = 0; a < 3; a++) c[a] = std::cos(t) * c[a] + std::sin(t) * n[a];
  }
  for (int a = 0; a < 3; a++) {
    g.size[a] = o.size[a];
    g.spacing[a] = o.spacing[a];
    g.direction[3 * a] = r[a], g.direction[3 * a + 1] = c[a], g.direction[3 * a + 2] = n[a];
  }
  for (int a = 0; a < 3; a++)
    g.origin[a] = -(r[a] * g.spacing[0] * (double)(g.size[0] - 1) + c[a] * g.spacing[1] * (double)(g.size[1] - 1) +
                    n[a] * g.spacing[2] * (double)(g.size[2] - 1)) / 2;
}

static void new_uid(char out[65], const char *root) {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, root);  // DCMTK keeps UIDs within 64 chars
  buf[64] = '\0';
  std::memcpy(out, buf, 65);
}

extern "C" mi_status *mi_phantom_generate(const mi_phantom_options *opts, mi_phantom **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: out is NULL");
  *out = nullptr;
  if (!opts) return mi_error(MI_ERR_INVALID_ARGUMENT, "phantom: options are NULL");
  mi_phantom_options o = *opts;
  MI_TRY(validate(o));

  mi_phantom *p = (mi_phantom *)std::calloc(1, sizeof *p);
  if (!p) return mi_error(MI_ERR_NO_MEMORY, "phantom: out of memory");
  p->options = o;
  layout(o, p->geometry);
  const size_t n = (size_t)(o.size[0] * o.size[1] * o.size[2]);
  p->values = (int16_t *)std::malloc(n * sizeof(int16_t));
  p->labels = (uint8_t *)std::malloc(n);
  p->sop_instance_uids = (char(*)[65])std::calloc((size_t)o.size[2], 65);
  if (!p->values || !p->labels || !p->sop_instance_uids) {
    mi_phantom_free(p);
    return mi_error(MI_ERR_NO_MEMORY, "phantom: cannot allocate %lldx%lldx%lld volumes", (long long)o.size[0],
                    (long long)o.size[1], (long long)o.size[2]);
  }
  try {
    PhantomAnatomy a = phantom_build_anatomy(o);
    phantom_rasterize(a, o, p->geometry, p->values, p->labels);
    p->lesion_count = (int)a.lesions.size();
    if (p->lesion_count) {
      p->lesions = (mi_phantom_lesion *)std::malloc(a.lesions.size() * sizeof(mi_phantom_lesion));
      if (!p->lesions) throw std::bad_alloc();
      std::memcpy(p->lesions, a.lesions.data(), a.lesions.size() * sizeof(mi_phantom_lesion));
    }
  } catch (const std::bad_alloc &) {
    mi_phantom_free(p);
    return mi_error(MI_ERR_NO_MEMORY, "phantom: out of memory while building the anatomy");
  } catch (const std::exception &e) {
    mi_phantom_free(p);
    return mi_error(MI_ERR_INTERNAL, "phantom: %s", e.what());
  }
  p->label_table = phantom_label_table(o.modality, o.contrast);
  p->label_count = o.lesions > 0 ? MI_PHANTOM_LABEL_COUNT : MI_PHANTOM_LABEL_COUNT - 1;
  p->rescale_intercept = o.modality == MI_PHANTOM_CT ? -1024 : 0;
  p->rescale_slope = 1;
  std::snprintf(p->patient_id, sizeof p->patient_id, "PHANTOM-%llu", (unsigned long long)o.seed);
  std::snprintf(p->patient_name, sizeof p->patient_name, "Phantom^Torso^Seed%llu", (unsigned long long)o.seed);
  new_uid(p->study_uid, SITE_STUDY_UID_ROOT);
  new_uid(p->series_uid, SITE_SERIES_UID_ROOT);
  new_uid(p->frame_of_reference_uid, SITE_SERIES_UID_ROOT);
  const int64_t ninst = o.enhanced ? 1 : o.size[2];
  for (int64_t k = 0; k < ninst; k++) new_uid(p->sop_instance_uids[k], SITE_INSTANCE_UID_ROOT);
  *out = p;
  return nullptr;
}

extern "C" void mi_phantom_free(mi_phantom *p) {
  if (!p) return;
  std::free(p->values);
  std::free(p->labels);
  std::free(p->lesions);
  std::free(p->sop_instance_uids);
  std::free(p);
}

extern "C" void mi_phantom_slice_position(const mi_phantom *p, int64_t k, double ipp[3]) {
  mi_geometry_index_to_point(&p->geometry, 0, 0, (double)k, ipp);
}

extern "C" void mi_phantom_orientation_patient(const mi_phantom *p, double iop[6]) {
  for (int a = 0; a < 3; a++) {
    iop[a] = p->geometry.direction[3 * a];
    iop[3 + a] = p->geometry.direction[3 * a + 1];
  }
}
