// Label table: names, SNOMED CT codes and colours follow the DICOM SEG
// conventions viewers (Slicer, OHIF) use; nominal values give the tissue
// intensity before texture and noise.
#include "internal.h"

namespace {
#define SCT "SCT"
#define ANAT SCT, "123037004", "Anatomical Structure"
#define MORPH SCT, "49755003", "Morphologically Altered Structure"

// value, name, category, type, rgb, CT HU
const mi_phantom_label kCT[] = {
    {1, "Body", ANAT, SCT, "38266002", "Entire body", {177, 122, 101}, 40},
    {2, "Right lung", ANAT, SCT, "3341006", "Right lung", {128, 174, 128}, -850},
    {3, "Left lung", ANAT, SCT, "44029006", "Left lung", {105, 160, 105}, -850},
    {4, "Heart", ANAT, SCT, "80891009", "Heart", {206, 110, 84}, 40},
    {5, "Liver", ANAT, SCT, "10200004", "Liver", {221, 130, 101}, 60},
    {6, "Spleen", ANAT, SCT, "78961009", "Spleen", {157, 108, 162}, 50},
    {7, "Right kidney", ANAT, SCT, "9846003", "Right kidney", {185, 102, 83}, 30},
    {8, "Left kidney", ANAT, SCT, "18639004", "Left kidney", {165, 92, 73}, 30},
    {9, "Spine", ANAT, SCT, "421060004", "Spinal column", {241, 214, 145}, 700},
    {10, "Aorta", ANAT, SCT, "15825003", "Aorta", {224, 97, 76}, 40},
    {11, "Lesion", MORPH, SCT, "52988006", "Lesion", {255, 255, 0}, 20},
};
}  // namespace

static mi_phantom_label ct_contrast[MI_PHANTOM_LABEL_COUNT];
static mi_phantom_label mr[MI_PHANTOM_LABEL_COUNT];

static void init_tables() {
  for (int i = 0; i < MI_PHANTOM_LABEL_COUNT; i++) {
    ct_contrast[i] = kCT[i];
    mr[i] = kCT[i];
  }
  ct_contrast[MI_PHANTOM_LABEL_AORTA - 1].nominal_value = 200;
  // T1-weighted-like signal: fat and marrow bright, lung and flowing blood dark.
  const double mrv[MI_PHANTOM_LABEL_COUNT] = {350, 40, 40, 300, 550, 420, 480, 480, 650, 80, 250};
  for (int i = 0; i < MI_PHANTOM_LABEL_COUNT; i++) mr[i].nominal_value = mrv[i];
}

const mi_phantom_label *phantom_label_table(mi_phantom_modality m, int contrast) {
  static bool ready = (init_tables(), true);  // thread-safe static init
  (void)ready;
  if (m == MI_PHANTOM_MR) return mr;
  return contrast ? ct_contrast : kCT;
}


double phantom_tissue_value(mi_phantom_modality m, PhantomTissue t) {
  static const double ct[] = {-100, 40, 80, 15};
  static const double mrv[] = {900, 350, 300, 100};
  return (m == MI_PHANTOM_MR ? mrv : ct)[t];
}
