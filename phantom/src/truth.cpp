// Ground truth next to the DICOM series: labels.nrrd, image.nrrd, labels.json.
// NRRD is a text header plus raw little-endian voxels; ITK/Slicer/pynrrd read it.
#include <cstdio>
#include <cstring>

#include "internal.h"

namespace {

std::string fmt(const char *f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string vec3(const double v[3]) {
  return "(" + fmt("%.17g", v[0]) + "," + fmt("%.17g", v[1]) + "," + fmt("%.17g", v[2]) + ")";
}

std::string nrrd_header(const mi_geometry &g, const char *type, const char *comment) {
  std::string h = "NRRD0004\n# ";
  h += comment;
  h += "\ntype: ";
  h += type;
  h += "\ndimension: 3\nspace: left-posterior-superior\nsizes: " + std::to_string((long long)g.size[0]) + " " +
       std::to_string((long long)g.size[1]) + " " + std::to_string((long long)g.size[2]) + "\nspace directions:";
  for (int a = 0; a < 3; a++) {
    const double v[3] = {g.direction[a] * g.spacing[a], g.direction[3 + a] * g.spacing[a],
                         g.direction[6 + a] * g.spacing[a]};
    h += " " + vec3(v);
  }
  h += "\nkinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: " + vec3(g.origin) + "\n\n";
  return h;
}

std::string json_str(const char *s) {
  std::string o = "\"";
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') o += '\\';
    o += *s;
  }
  return o + "\"";
}

std::string json_vec(const double *v, int n) {
  std::string o = "[";
  for (int i = 0; i < n; i++) o += (i ? ", " : "") + fmt("%.10g", v[i]);
  return o + "]";
}

std::string labels_json(const mi_phantom *p) {
  const mi_geometry &g = p->geometry;
  const mi_phantom_options &o = p->options;
  static const char *orient[] = {"axial", "coronal", "sagittal", "oblique"};
  std::string j = "{\n  \"generator\": \"medinfer phantom\",\n";
  j += "  \"seed\": " + std::to_string((unsigned long long)o.seed) + ",\n";
  j += "  \"modality\": " + json_str(o.modality == MI_PHANTOM_MR ? "MR" : "CT") + ",\n";
  j += "  \"orientation\": " + json_str(orient[o.orientation]) + ",\n";
  j += "  \"gantry_tilt_deg\": " + fmt("%.10g", o.gantry_tilt_deg) + ",\n";
  j += "  \"reverse_slices\": " + std::string(o.reverse_slices ? "true" : "false") + ",\n";
  j += "  \"missing_slice\": " + std::to_string((long long)o.missing_slice) + ",\n";
  j += "  \"enhanced\": " + std::string(o.enhanced ? "true" : "false") + ",\n";
  j += "  \"transfer_syntax\": " + json_str(mi_phantom_transfer_syntax_uid(o.transfer_syntax)) + ",\n";
  const double size[3] = {(double)g.size[0], (double)g.size[1], (double)g.size[2]};
  j += "  \"geometry\": {\"size\": " + json_vec(size, 3) + ", \"origin\": " + json_vec(g.origin, 3) +
       ", \"spacing\": " + json_vec(g.spacing, 3) + ", \"direction\": " + json_vec(g.direction, 9) + "},\n";
  j += "  \"study_instance_uid\": " + json_str(p->study_uid) + ",\n";
  j += "  \"series_instance_uid\": " + json_str(p->series_uid) + ",\n";
  j += "  \"frame_of_reference_uid\": " + json_str(p->frame_of_reference_uid) + ",\n";
  j += "  \"labels\": [\n";
  for (int i = 0; i < p->label_count; i++) {
    const mi_phantom_label &l = p->label_table[i];
    j += "    {\"value\": " + std::to_string(l.value) + ", \"name\": " + json_str(l.name) +
         ", \"category\": {\"scheme\": " + json_str(l.category_scheme) + ", \"code\": " + json_str(l.category_code) +
         ", \"meaning\": " + json_str(l.category_meaning) + "}, \"type\": {\"scheme\": " + json_str(l.type_scheme) +
         ", \"code\": " + json_str(l.type_code) + ", \"meaning\": " + json_str(l.type_meaning) +
         "}, \"color\": [" + std::to_string(l.rgb[0]) + ", " + std::to_string(l.rgb[1]) + ", " +
         std::to_string(l.rgb[2]) + "], \"nominal_value\": " + fmt("%.6g", l.nominal_value) + "}" +
         (i + 1 < p->label_count ? ",\n" : "\n");
  }
  j += "  ],\n  \"lesions\": [\n";
  for (int i = 0; i < p->lesion_count; i++) {
    const mi_phantom_lesion &l = p->lesions[i];
    j += "    {\"center_mm\": " + json_vec(l.center, 3) + ", \"radius_mm\": " + fmt("%.10g", l.radius) +
         ", \"host_label\": " + std::to_string(l.host) + "}" + (i + 1 < p->lesion_count ? ",\n" : "\n");
  }
  j += "  ]\n}\n";
  return j;
}

bool little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

}  // namespace

mi_status *phantom_write_truth_files(const mi_phantom *p, const std::string &dir) {
  if (!little_endian()) return mi_error(MI_ERR_UNSUPPORTED, "%s: NRRD writer assumes a little-endian host", dir.c_str());
  const mi_geometry &g = p->geometry;
  const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
  const std::string lh = nrrd_header(g, "uint8", "medinfer phantom label volume (see labels.json)");
  MI_TRY(phantom_write_file_atomic(dir + "/labels.nrrd", {{lh.data(), lh.size()}, {p->labels, n}}));
  const std::string ih = nrrd_header(
      g, "int16", p->options.modality == MI_PHANTOM_MR ? "medinfer phantom MR signal" : "medinfer phantom CT in HU");
  MI_TRY(phantom_write_file_atomic(dir + "/image.nrrd", {{ih.data(), ih.size()}, {p->values, n * sizeof(int16_t)}}));
  const std::string js = labels_json(p);
  return phantom_write_file_atomic(dir + "/labels.json", {{js.data(), js.size()}});
}
