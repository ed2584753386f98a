// Torso anatomy as a priority-ordered list of perturbed ellipsoids, cylinders
// and boxes.  Positions follow a typical adult torso (LPS, mm, centred at the
// origin); the seed jitters position, size, rotation and boundary shape.
#include <cmath>

#include "internal.h"

namespace {

struct Builder {
  const mi_phantom_options &o;
  const mi_phantom_label *table;
  PhantomRng rng;
  PhantomAnatomy a;

  Builder(const mi_phantom_options &opts)
      : o(opts), table(phantom_label_table(opts.modality, opts.contrast)), rng(opts.seed) {}

  // Texture amplitude scales with modality contrast (MR units are ~2x HU here).
  double tex(double ct_amp) const { return o.modality == MI_PHANTOM_MR ? 2 * ct_amp : ct_amp; }

  PhantomShape &add(PhantomShape::Kind kind, uint8_t label, double value, double texture,
                    const double c[3], const double semi[3], double rot_z_deg, double pert) {
    PhantomShape s{};
    s.kind = kind;
    s.label = label;
    s.value = value;
    s.texture = texture;
    for (int i = 0; i < 3; i++) s.c[i] = c[i];
    // u = diag(1/semi) * Rz(-angle) * (p - c)
    const double t = rot_z_deg * M_PI / 180, ct = std::cos(t), st = std::sin(t);
    const double r[9] = {ct, st, 0, -st, ct, 0, 0, 0, 1};
    for (int row = 0; row < 3; row++)
      for (int col = 0; col < 3; col++) s.m[3 * row + col] = r[3 * row + col] / semi[row];
    s.pert = pert;
    for (int k = 0; k < 3; k++) {
      // Random direction, wavelength 50..110 mm: lobes, not ripples.
      double th = rng.uniform(0, 2 * M_PI), z = rng.uniform(-1, 1), rr = std::sqrt(1 - z * z);
      double f = 2 * M_PI / rng.uniform(50, 110);
      s.w[k][0] = f * rr * std::cos(th);
      s.w[k][1] = f * rr * std::sin(th);
      s.w[k][2] = f * z;
      s.phi[k] = rng.uniform(0, 2 * M_PI);
    }
    a.shapes.push_back(s);
    return a.shapes.back();
  }

  // An organ: nominal centre/semi-axes/rotation, jittered by the seed.
  PhantomShape &organ(PhantomShape::Kind kind, uint8_t label, double tex_ct, double cx, double cy, double cz,
                      double sx, double sy, double sz, double rot, double jitter_mm, double pert) {
    const double c[3] = {cx + rng.uniform(-jitter_mm, jitter_mm), cy + rng.uniform(-jitter_mm, jitter_mm),
                         cz + rng.uniform(-jitter_mm, jitter_mm)};
    const double k = rng.uniform(0.9, 1.1);
    const double semi[3] = {sx * k * rng.uniform(0.95, 1.05), sy * k * rng.uniform(0.95, 1.05),
                            sz * k * rng.uniform(0.95, 1.05)};
    return add(kind, label, table[label - 1].nominal_value, tex(tex_ct), c, semi, rot + rng.uniform(-8, 8), pert);
  }

  // A fat layer `margin_mm` thick around a shape (same centre, rotation and
  // boundary lobes), labelled Body.  It draws nothing from the generator, so
  // every other shape and lesion of a seed stays where it was.
  PhantomShape fat_shell(const PhantomShape &s, double margin_mm, bool radial_only) const {
    PhantomShape f = s;
    f.label = MI_PHANTOM_LABEL_BODY;
    f.value = phantom_tissue_value(o.modality, TISSUE_FAT);
    f.texture = tex(12);
    f.fat_mixing = false;
    for (int r = 0; r < 3; r++) {
      if (radial_only && r == 2) continue;
      const double *row = &s.m[3 * r];
      const double semi = 1 / std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
      for (int c = 0; c < 3; c++) f.m[3 * r + c] = row[c] * semi / (semi + margin_mm);
    }
    return f;
  }

  void build() {
    const auto E = PhantomShape::ELLIPSOID, C = PhantomShape::CYLINDER, B = PhantomShape::BOX;
    const mi_phantom_modality m = o.modality;
    const double body_a = 165 * rng.uniform(0.92, 1.08), body_b = 115 * rng.uniform(0.92, 1.08);
    const double fat = rng.uniform(10, 18);

    // Spine: vertebral bodies and discs repeat every ~30 mm; the canal runs through.
    const double pitch = 30 * rng.uniform(0.93, 1.07), phase = rng.uniform(0, pitch);
    const double canal_c[3] = {0, 82, 0}, canal_r[3] = {9, 9, 1000};
    add(C, MI_PHANTOM_LABEL_BODY, phantom_tissue_value(m, TISSUE_CSF), tex(3), canal_c, canal_r, 0, 0);
    for (double z0 = -220 + phase; z0 < 220; z0 += pitch) {
      const double body_h = pitch * 0.8, disc_h = pitch - body_h;
      const double vc[3] = {0, 50, z0 + body_h / 2}, vr[3] = {20, 20, body_h / 2};
      add(C, MI_PHANTOM_LABEL_SPINE, table[MI_PHANTOM_LABEL_SPINE - 1].nominal_value, tex(60), vc, vr, 0, 0.03);
      const double dc[3] = {0, 50, z0 + body_h + disc_h / 2}, dr[3] = {19, 19, disc_h / 2};
      add(C, MI_PHANTOM_LABEL_BODY, phantom_tissue_value(m, TISSUE_DISC), tex(5), dc, dr, 0, 0);
      const double ac[3] = {0, 82, vc[2]}, ar[3] = {17, 16, body_h / 2 * 0.9};
      add(C, MI_PHANTOM_LABEL_SPINE, table[MI_PHANTOM_LABEL_SPINE - 1].nominal_value, tex(60), ac, ar, 0, 0);
      const double sc[3] = {0, 100, vc[2] - 2}, sr[3] = {5, 9, body_h / 2 * 0.7};
      add(B, MI_PHANTOM_LABEL_SPINE, table[MI_PHANTOM_LABEL_SPINE - 1].nominal_value, tex(60), sc, sr, 0, 0);
    }
    {
      const double c[3] = {20 + rng.uniform(-3, 3), 14 + rng.uniform(-3, 3), -30};
      const double r = 12 * rng.uniform(0.85, 1.15), semi[3] = {r, r, 170};
      add(C, MI_PHANTOM_LABEL_AORTA, table[MI_PHANTOM_LABEL_AORTA - 1].nominal_value, tex(5), c, semi, 0, 0);
    }
    const size_t aorta = a.shapes.size() - 1;
    organ(E, MI_PHANTOM_LABEL_RIGHT_KIDNEY, 10, -62, 55, -45, 28, 32, 55, -20, 5, 0.06);
    organ(E, MI_PHANTOM_LABEL_LEFT_KIDNEY, 10, 62, 55, -35, 28, 32, 55, 20, 5, 0.06);
    const size_t kidneys = a.shapes.size() - 2;
    organ(E, MI_PHANTOM_LABEL_SPLEEN, 8, 90, 42, 25, 28, 48, 48, 30, 5, 0.08);
    organ(E, MI_PHANTOM_LABEL_LIVER, 8, -65, -5, 0, 85, 78, 70, -10, 6, 0.08);
    organ(E, MI_PHANTOM_LABEL_HEART, 8, 25, -25, 75, 60, 50, 55, 30, 5, 0.05);
    organ(E, MI_PHANTOM_LABEL_RIGHT_LUNG, 30, -80, 5, 115, 60, 82, 105, 0, 5, 0.05);
    organ(E, MI_PHANTOM_LABEL_LEFT_LUNG, 30, 80, 5, 120, 56, 82, 100, 0, 5, 0.05);

    // Retroperitoneal fat, as real CT shows it: a periaortic layer and the
    // perirenal fat, below every organ in priority so organs keep their voxels.
    const PhantomShape shells[3] = {fat_shell(a.shapes[aorta], 5, true), fat_shell(a.shapes[kidneys], 7, false),
                                    fat_shell(a.shapes[kidneys + 1], 7, false)};
    for (const auto &f : shells) a.shapes.push_back(f);

    // Body interior (soft tissue with fat patches) inside a subcutaneous fat layer.
    const double bc[3] = {0, 0, 0};
    const double inner[3] = {body_a - fat, body_b - fat, 5000}, outer[3] = {body_a, body_b, 5000};
    add(C, MI_PHANTOM_LABEL_BODY, phantom_tissue_value(m, TISSUE_SOFT), tex(10), bc, inner, 0, 0.02).fat_mixing =
        true;
    add(C, MI_PHANTOM_LABEL_BODY, phantom_tissue_value(m, TISSUE_FAT), tex(12), bc, outer, 0, 0.02);

    place_lesions();
  }

  static bool inside_unit(const PhantomShape &s, const double p[3], double margin) {
    double q = 0;
    for (int r = 0; r < 3; r++) {
      double u = 0;
      for (int c = 0; c < 3; c++) u += s.m[3 * r + c] * (p[c] - s.c[c]);
      q += u * u;
    }
    return q <= margin * margin;
  }

  // On CT a lesion stands out from its host as real ones do: solid nodules
  // in the lungs, hypodense lesions (the table's 20 HU) in the liver, and
  // cyst-like ones 40 HU below the kidney; MR keeps the table's signal.
  double lesion_value(uint8_t host) const {
    const double v = table[MI_PHANTOM_LABEL_LESION - 1].nominal_value;
    if (o.modality == MI_PHANTOM_MR) return v;
    if (host == MI_PHANTOM_LABEL_RIGHT_LUNG || host == MI_PHANTOM_LABEL_LEFT_LUNG) return 30;
    if (host == MI_PHANTOM_LABEL_RIGHT_KIDNEY || host == MI_PHANTOM_LABEL_LEFT_KIDNEY)
      return table[host - 1].nominal_value - 40;
    return v;
  }

  // Lesions sit well inside liver, lungs or kidneys and never overlap; they
  // go first in the priority list so they override their host.
  void place_lesions() {
    const uint8_t hosts[] = {MI_PHANTOM_LABEL_LIVER, MI_PHANTOM_LABEL_RIGHT_LUNG, MI_PHANTOM_LABEL_LIVER,
                             MI_PHANTOM_LABEL_LEFT_LUNG, MI_PHANTOM_LABEL_RIGHT_KIDNEY};
    std::vector<PhantomShape> lesion_shapes;
    for (int n = 0; n < o.lesions; n++) {
      const uint8_t host = hosts[n % 5];
      const PhantomShape *hs = nullptr;
      for (const auto &s : a.shapes)
        if (s.label == host && s.kind == PhantomShape::ELLIPSOID) hs = &s;
      for (int attempt = 0; attempt < 1000; attempt++) {
        // Random point in the host's unit ball, mapped back to mm.
        double u[3];
        do {
          for (double &x : u) x = rng.uniform(-0.6, 0.6);
        } while (u[0] * u[0] + u[1] * u[1] + u[2] * u[2] > 0.36);
        double p[3];
        invert_map(*hs, u, p);
        const double radius = rng.uniform(3, 10);
        bool clash = false;
        for (const auto &l : a.lesions) {
          double d = std::sqrt((l.center[0] - p[0]) * (l.center[0] - p[0]) + (l.center[1] - p[1]) * (l.center[1] - p[1]) +
                               (l.center[2] - p[2]) * (l.center[2] - p[2]));
          if (d < l.radius + radius + 3) clash = true;
        }
        if (clash && attempt < 999) continue;
        a.lesions.push_back({{p[0], p[1], p[2]}, radius, host});
        const double semi[3] = {radius, radius, radius};
        PhantomShape s{};
        s.kind = PhantomShape::ELLIPSOID;
        s.label = MI_PHANTOM_LABEL_LESION;
        s.value = lesion_value(host);
        s.texture = tex(5);
        for (int i = 0; i < 3; i++) s.c[i] = p[i];
        for (int i = 0; i < 9; i++) s.m[i] = (i % 4 == 0) ? 1 / semi[i / 3] : 0;
        lesion_shapes.push_back(s);
        break;
      }
    }
    a.shapes.insert(a.shapes.begin(), lesion_shapes.begin(), lesion_shapes.end());
  }

  // p = c + m^-1 u (m is a scaled rotation about z: invert the 3x3 directly).
  static void invert_map(const PhantomShape &s, const double u[3], double p[3]) {
    const double *d = s.m;
    double det = d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) +
                 d[2] * (d[3] * d[7] - d[4] * d[6]);
    double inv[9] = {(d[4] * d[8] - d[5] * d[7]) / det, (d[2] * d[7] - d[1] * d[8]) / det,
                     (d[1] * d[5] - d[2] * d[4]) / det, (d[5] * d[6] - d[3] * d[8]) / det,
                     (d[0] * d[8] - d[2] * d[6]) / det, (d[2] * d[3] - d[0] * d[5]) / det,
                     (d[3] * d[7] - d[4] * d[6]) / det, (d[1] * d[6] - d[0] * d[7]) / det,
                     (d[0] * d[4] - d[1] * d[3]) / det};
    for (int r = 0; r < 3; r++) p[r] = s.c[r] + inv[3 * r] * u[0] + inv[3 * r + 1] * u[1] + inv[3 * r + 2] * u[2];
  }
};

}  // namespace

PhantomAnatomy phantom_build_anatomy(const mi_phantom_options &o) {
  Builder b(o);
  b.build();
  return std::move(b.a);
}
