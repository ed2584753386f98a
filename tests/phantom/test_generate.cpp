// In-memory phantom: determinism, anatomy, intensities, options, bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "phantom_test_util.h"

namespace {

struct Stats {
  int64_t n = 0;
  double sum = 0, sum2 = 0;
  double mean() const { return n ? sum / (double)n : NAN; }
  double sd() const { return n > 1 ? std::sqrt(sum2 / (double)n - mean() * mean()) : NAN; }
};

std::map<int, Stats> label_stats(const mi_phantom *p) {
  std::map<int, Stats> s;
  const int64_t n = p->geometry.size[0] * p->geometry.size[1] * p->geometry.size[2];
  for (int64_t i = 0; i < n; i++) {
    Stats &st = s[p->labels[i]];
    st.n++;
    st.sum += p->values[i];
    st.sum2 += (double)p->values[i] * p->values[i];
  }
  return s;
}

mi_phantom_options medium_options(uint64_t seed) {
  mi_phantom_options o = small_options(seed);
  o.size[0] = 128, o.size[1] = 128, o.size[2] = 72;  // auto spacing covers the whole torso
  return o;
}

// What a C caller can put in an enum field (C++ forbids forming the value directly).
template <typename E>
void set_raw(E &e, int v) {
  std::memcpy(&e, &v, sizeof v);
}

int64_t voxel_count(const mi_phantom *p) { return p->geometry.size[0] * p->geometry.size[1] * p->geometry.size[2]; }

}  // namespace

TEST(PhantomGenerate, SameSeedGivesIdenticalVolumesWhateverTheThreadCount) {
  mi_phantom_options o = small_options(42);
  o.lesions = 3;
  o.threads = 1;
  PhantomPtr a = make_phantom(o);
  o.threads = 2;
  PhantomPtr b = make_phantom(o);
  ASSERT_TRUE(a && b);
  const size_t n = (size_t)voxel_count(a.get());
  EXPECT_EQ(0, std::memcmp(a->values, b->values, n * sizeof(int16_t)));
  EXPECT_EQ(0, std::memcmp(a->labels, b->labels, n));
  ASSERT_EQ(a->lesion_count, b->lesion_count);
  for (int i = 0; i < a->lesion_count; i++) EXPECT_EQ(a->lesions[i].center[0], b->lesions[i].center[0]);
}

TEST(PhantomGenerate, DifferentSeedsChangeShapesAndNoise) {
  PhantomPtr a = make_phantom(small_options(1)), b = make_phantom(small_options(2));
  ASSERT_TRUE(a && b);
  const int64_t n = voxel_count(a.get());
  int64_t label_diff = 0, value_diff = 0;
  for (int64_t i = 0; i < n; i++) label_diff += a->labels[i] != b->labels[i], value_diff += a->values[i] != b->values[i];
  EXPECT_GT(label_diff, n / 200) << "shape variation should move organ boundaries";
  EXPECT_GT(value_diff, n / 2) << "noise should differ";
}

TEST(PhantomGenerate, AllOrgansPresentWithRealisticHU) {
  mi_phantom_options o = medium_options(3);
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->label_count, 10);
  auto s = label_stats(p.get());
  struct Expect {
    int label;
    double lo, hi;
  } expect[] = {
      {0, -1010, -990},
      {MI_PHANTOM_LABEL_RIGHT_LUNG, -880, -820},
      {MI_PHANTOM_LABEL_LEFT_LUNG, -880, -820},
      {MI_PHANTOM_LABEL_HEART, 25, 55},
      {MI_PHANTOM_LABEL_LIVER, 50, 70},
      {MI_PHANTOM_LABEL_SPLEEN, 40, 60},
      {MI_PHANTOM_LABEL_RIGHT_KIDNEY, 20, 40},
      {MI_PHANTOM_LABEL_LEFT_KIDNEY, 20, 40},
      {MI_PHANTOM_LABEL_SPINE, 600, 800},
      {MI_PHANTOM_LABEL_AORTA, 25, 55},
      {MI_PHANTOM_LABEL_BODY, -80, 40},  // muscle/soft tissue mixed with fat
  };
  for (const auto &e : expect) {
    ASSERT_GT(s[e.label].n, 100) << "label " << e.label << " missing";
    EXPECT_GE(s[e.label].mean(), e.lo) << "label " << e.label;
    EXPECT_LE(s[e.label].mean(), e.hi) << "label " << e.label;
  }
  // Gaussian noise of the requested SD shows in air (no texture there).
  EXPECT_NEAR(s[0].sd(), 12, 2.5);
  // The body holds real fat: a clear share of its voxels is below -50 HU.
  int64_t fat = 0, body = 0;
  for (int64_t i = 0; i < voxel_count(p.get()); i++)
    if (p->labels[i] == MI_PHANTOM_LABEL_BODY) body++, fat += p->values[i] < -50;
  EXPECT_GT(fat, body / 10);
  // Liver denser than spleen denser than kidney, as nominal values say.
  EXPECT_GT(s[MI_PHANTOM_LABEL_LIVER].mean(), s[MI_PHANTOM_LABEL_SPLEEN].mean());
  EXPECT_GT(s[MI_PHANTOM_LABEL_SPLEEN].mean(), s[MI_PHANTOM_LABEL_RIGHT_KIDNEY].mean());
}

TEST(PhantomGenerate, NoNoiseMeansTextureOnly) {
  mi_phantom_options o = small_options(5);
  o.noise_sigma = 0;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  auto s = label_stats(p.get());
  EXPECT_EQ(s[0].sd(), 0) << "air without noise is exactly -1000";
  EXPECT_EQ(s[0].mean(), -1000);
}

TEST(PhantomGenerate, ContrastBrightensAorta) {
  mi_phantom_options o = medium_options(4);
  o.contrast = 1;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  auto s = label_stats(p.get());
  EXPECT_NEAR(s[MI_PHANTOM_LABEL_AORTA].mean(), 200, 10);
}

TEST(PhantomGenerate, MRIntensitiesHaveNoHUAndT1Contrast) {
  mi_phantom_options o = medium_options(6);
  o.modality = MI_PHANTOM_MR;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rescale_intercept, 0);
  auto s = label_stats(p.get());
  for (int64_t i = 0; i < voxel_count(p.get()); i++) ASSERT_GE(p->values[i], 0);
  EXPECT_LT(s[0].mean(), 30);
  EXPECT_LT(s[MI_PHANTOM_LABEL_RIGHT_LUNG].mean(), 100);
  EXPECT_GT(s[MI_PHANTOM_LABEL_LIVER].mean(), s[MI_PHANTOM_LABEL_SPLEEN].mean());
  EXPECT_GT(s[MI_PHANTOM_LABEL_SPINE].mean(), s[MI_PHANTOM_LABEL_LIVER].mean());
  EXPECT_LT(s[MI_PHANTOM_LABEL_AORTA].mean(), 150) << "flow void";
}

TEST(PhantomGenerate, LesionsAreLabelledSpheresInsideTheirHosts) {
  mi_phantom_options o = medium_options(8);
  o.size[0] = o.size[1] = 160, o.size[2] = 120;
  o.lesions = 5;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->lesion_count, 5);
  EXPECT_EQ(p->label_count, 11);
  EXPECT_STREQ(p->label_table[MI_PHANTOM_LABEL_LESION - 1].type_code, "52988006");
  for (int l = 0; l < p->lesion_count; l++) {
    const mi_phantom_lesion &les = p->lesions[l];
    EXPECT_GE(les.radius, 3);
    EXPECT_LE(les.radius, 10);
    double idx[3];
    mi_geometry_point_to_index(&p->geometry, les.center, idx);
    const int64_t i = std::llround(idx[0]), j = std::llround(idx[1]), k = std::llround(idx[2]);
    ASSERT_TRUE(i >= 0 && j >= 0 && k >= 0 && i < o.size[0] && j < o.size[1] && k < o.size[2]);
    EXPECT_EQ(p->labels[i + o.size[0] * (j + o.size[1] * k)], MI_PHANTOM_LABEL_LESION) << "lesion " << l;
    // Lesion voxels: roughly the sphere's volume (partial voxels at 2.5 mm spacing).
  }
  int64_t lesion_voxels = 0;
  for (int64_t i = 0; i < voxel_count(p.get()); i++) lesion_voxels += p->labels[i] == MI_PHANTOM_LABEL_LESION;
  double expected = 0;
  for (int l = 0; l < p->lesion_count; l++) expected += 4.0 / 3 * M_PI * std::pow(p->lesions[l].radius, 3);
  const double voxel_mm3 = p->geometry.spacing[0] * p->geometry.spacing[1] * p->geometry.spacing[2];
  EXPECT_NEAR(lesion_voxels * voxel_mm3, expected, expected * 0.35);
}

// The same anatomy sampled on differently oriented grids: interior points of
// each organ in the axial phantom carry the same label in the others.
TEST(PhantomGenerate, OrientationsSampleTheSameAnatomy) {
  mi_phantom_options base = small_options(11);
  base.size[0] = base.size[1] = base.size[2] = 80;
  base.spacing[0] = base.spacing[1] = base.spacing[2] = 4.5;
  base.noise_sigma = 0;
  PhantomPtr axial = make_phantom(base);
  ASSERT_TRUE(axial);
  const int64_t n = 80;
  auto lab = [&](const mi_phantom *p, int64_t i, int64_t j, int64_t k) { return p->labels[i + n * (j + n * k)]; };
  for (mi_phantom_orientation orient : {MI_PHANTOM_CORONAL, MI_PHANTOM_SAGITTAL, MI_PHANTOM_OBLIQUE}) {
    mi_phantom_options o = base;
    o.orientation = orient;
    PhantomPtr q = make_phantom(o);
    ASSERT_TRUE(q);
    int checked = 0, agree = 0;
    for (int64_t k = 2; k < n - 2; k += 3)
      for (int64_t j = 2; j < n - 2; j += 3)
        for (int64_t i = 2; i < n - 2; i += 3) {
          const uint8_t l = lab(axial.get(), i, j, k);
          bool interior = true;  // 5x5x5 block of one label: safe against half-voxel offsets
          for (int dk = -2; dk <= 2 && interior; dk++)
            for (int dj = -2; dj <= 2 && interior; dj++)
              for (int di = -2; di <= 2 && interior; di++) interior = lab(axial.get(), i + di, j + dj, k + dk) == l;
          if (!interior) continue;
          double pt[3], idx[3];
          mi_geometry_index_to_point(&axial->geometry, (double)i, (double)j, (double)k, pt);
          mi_geometry_point_to_index(&q->geometry, pt, idx);
          const int64_t a = std::llround(idx[0]), b = std::llround(idx[1]), c = std::llround(idx[2]);
          if (a < 0 || b < 0 || c < 0 || a >= n || b >= n || c >= n) continue;
          checked++;
          agree += lab(q.get(), a, b, c) == l;
        }
    EXPECT_GT(checked, 500) << "orientation " << orient;
    EXPECT_EQ(agree, checked) << "orientation " << orient;
  }
}

TEST(PhantomGenerate, GeometryFollowsOrientationAndTilt) {
  mi_phantom_options o = small_options();
  o.orientation = MI_PHANTOM_CORONAL;
  PhantomPtr c = make_phantom(o);
  ASSERT_TRUE(c);
  double iop[6];
  mi_phantom_orientation_patient(c.get(), iop);
  const double want[6] = {1, 0, 0, 0, 0, -1};
  for (int i = 0; i < 6; i++) EXPECT_NEAR(iop[i], want[i], 1e-12);
  EXPECT_NEAR(c->geometry.direction[5], 1, 1e-12) << "coronal slices advance posteriorly";

  o = small_options();
  o.gantry_tilt_deg = 20;
  PhantomPtr t = make_phantom(o);
  ASSERT_TRUE(t);
  double p0[3], p1[3];
  mi_phantom_slice_position(t.get(), 0, p0);
  mi_phantom_slice_position(t.get(), 1, p1);
  mi_phantom_orientation_patient(t.get(), iop);
  const double step[3] = {p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]};
  const double len = std::sqrt(step[0] * step[0] + step[1] * step[1] + step[2] * step[2]);
  // Table moves along z; the image column axis leans 20 degrees towards it.
  EXPECT_NEAR(step[2] / len, 1, 1e-12);
  EXPECT_NEAR((iop[3] * step[0] + iop[4] * step[1] + iop[5] * step[2]) / len, std::sin(20 * M_PI / 180), 1e-12);
  // Centre of the volume stays at the anatomy's centre.
  double mid[3];
  mi_geometry_index_to_point(&t->geometry, (o.size[0] - 1) / 2.0, (o.size[1] - 1) / 2.0, (o.size[2] - 1) / 2.0, mid);
  for (double x : mid) EXPECT_NEAR(x, 0, 1e-9);
}

TEST(PhantomGenerate, BadOptionsGiveNamedErrors) {
  struct Case {
    const char *what;
    void (*edit)(mi_phantom_options &);
    mi_code code;
  } cases[] = {
      {"columns", [](mi_phantom_options &o) { o.size[0] = 0; }, MI_ERR_INVALID_ARGUMENT},
      {"slices", [](mi_phantom_options &o) { o.size[2] = 100000; }, MI_ERR_INVALID_ARGUMENT},
      {"voxel limit", [](mi_phantom_options &o) { o.size[0] = o.size[1] = o.size[2] = 2048; }, MI_ERR_INVALID_ARGUMENT},
      {"spacing", [](mi_phantom_options &o) { o.spacing[1] = -1; }, MI_ERR_INVALID_ARGUMENT},
      {"spacing", [](mi_phantom_options &o) { o.spacing[2] = NAN; }, MI_ERR_INVALID_ARGUMENT},
      {"gantry tilt", [](mi_phantom_options &o) { o.gantry_tilt_deg = 60; }, MI_ERR_INVALID_ARGUMENT},
      {"missing slice", [](mi_phantom_options &o) { o.missing_slice = 0; }, MI_ERR_INVALID_ARGUMENT},
      {"missing slice", [](mi_phantom_options &o) { o.missing_slice = o.size[2] - 1; }, MI_ERR_INVALID_ARGUMENT},
      {"lesions", [](mi_phantom_options &o) { o.lesions = 1000; }, MI_ERR_INVALID_ARGUMENT},
      {"orientation", [](mi_phantom_options &o) { set_raw(o.orientation, 9); }, MI_ERR_INVALID_ARGUMENT},
      {"transfer syntax", [](mi_phantom_options &o) { set_raw(o.transfer_syntax, -2); }, MI_ERR_INVALID_ARGUMENT},
      {"modality", [](mi_phantom_options &o) { set_raw(o.modality, 7); }, MI_ERR_INVALID_ARGUMENT},
      {"CT only", [](mi_phantom_options &o) { o.enhanced = 1, o.modality = MI_PHANTOM_MR; }, MI_ERR_UNSUPPORTED},
  };
  for (const auto &c : cases) {
    mi_phantom_options o = small_options();
    c.edit(o);
    mi_phantom *p = reinterpret_cast<mi_phantom *>(0x1);
    mi_status *st = mi_phantom_generate(&o, &p);
    ASSERT_NE(st, nullptr) << c.what;
    EXPECT_EQ(mi_status_code(st), c.code) << c.what;
    EXPECT_NE(std::string(mi_status_message(st)).find(c.what), std::string::npos) << mi_status_message(st);
    EXPECT_EQ(p, nullptr);
    mi_status_free(st);
  }
  mi_status *st = mi_phantom_generate(nullptr, nullptr);
  EXPECT_EQ(mi_status_code(st), MI_ERR_INVALID_ARGUMENT);
  mi_status_free(st);
  mi_phantom_free(nullptr);
}
