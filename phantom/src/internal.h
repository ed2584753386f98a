// Internals shared by the phantom sources (not installed).
#ifndef MEDINFER_PHANTOM_INTERNAL_H
#define MEDINFER_PHANTOM_INTERNAL_H

#include <cstdint>
#include <string>
#include <vector>

#include "medinfer/phantom.h"

// --- deterministic randomness (splitmix64: tiny, fast, counter-friendly) ---
static inline uint64_t phantom_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
struct PhantomRng {
  uint64_t s;
  explicit PhantomRng(uint64_t seed) : s(phantom_mix(seed ^ 0x5EEDull)) {}
  uint64_t next() { return phantom_mix(s++); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * ((next() >> 11) * 0x1.0p-53); }
};

// --- labels ---
const mi_phantom_label *phantom_label_table(mi_phantom_modality m, int contrast);

// Tissues without a label of their own (they are labelled Body).
enum PhantomTissue { TISSUE_FAT, TISSUE_SOFT, TISSUE_DISC, TISSUE_CSF };
double phantom_tissue_value(mi_phantom_modality m, PhantomTissue t);

// --- anatomy: a priority-ordered list of implicit shapes ---
struct PhantomShape {
  enum Kind { ELLIPSOID, CYLINDER, BOX } kind;
  uint8_t label;
  double value;     // nominal intensity
  double texture;   // amplitude of the smooth texture
  bool fat_mixing;  // soft tissue with fat patches (abdominal interior)
  double c[3];      // centre (LPS mm)
  double m[9];      // row-major: u = m * (p - c) maps the shape to the unit ball/cylinder/cube
  double pert;      // relative boundary perturbation amplitude
  double w[3][3];   // perturbation wave vectors (rad/mm)
  double phi[3];
};

struct PhantomAnatomy {
  std::vector<PhantomShape> shapes;  // first match wins
  std::vector<mi_phantom_lesion> lesions;
};

PhantomAnatomy phantom_build_anatomy(const mi_phantom_options &o);

// Fill values and labels for the phantom's geometry (multi-threaded).
void phantom_rasterize(const PhantomAnatomy &a, const mi_phantom_options &o, const mi_geometry &g,
                       int16_t *values, uint8_t *labels);

// --- file helpers ---
mi_status *phantom_mkdirs(const std::string &dir);
// Write bytes to path atomically (temp + rename); errors name the path.
struct PhantomChunk {
  const void *data;
  size_t size;
};
mi_status *phantom_write_file_atomic(const std::string &path, const std::vector<PhantomChunk> &chunks);
std::string phantom_temp_name(const std::string &path);

// DICOM DS value of at most 16 characters, as precise as fits.
std::string phantom_ds(double v);

#endif
