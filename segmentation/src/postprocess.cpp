// Per-label clean-up on the model grid (ITK): keep the largest connected
// component, fill enclosed holes.  Works on each label's bounding box (plus a
// one-voxel margin, so the box border is outside the label as in the full
// volume).  Holes are background voxels enclosed by the label: filling a
// label that wraps others (a body outline) must not swallow them.
#include <itkBinaryFillholeImageFilter.h>
#include <itkConnectedComponentImageFilter.h>
#include <itkRelabelComponentImageFilter.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <vector>

#include "pipeline_internal.h"

namespace {

using Mask = itk::Image<unsigned char, 3>;
using Comp = itk::Image<unsigned int, 3>;

struct Box {
  int64_t lo[3], hi[3];  // inclusive
};

// Set voxel v to the one-hot vector of `label` so the back resampling sees it.
void one_hot(float *probs, int64_t n, const mi_decision *d, int64_t v, uint8_t label) {
  for (int c = 0; c < d->channels; ++c) probs[(int64_t)c * n + v] = 0;
  if (d->activation == MI_ACTIVATION_SOFTMAX) {
    probs[v] = label == 0 ? 1.0f : 0.0f;  // channel 0: background
    if (label) probs[(int64_t)label * n + v] = 1;
  } else if (label) {
    probs[(int64_t)(label - 1) * n + v] = 1;
  }
}

mi_status *clean_label(const mi_geometry *g, uint8_t *labels, float *probs, const mi_decision *d, uint8_t value,
                       bool lcc, bool fill, const Box &b, int threads) {
  const int64_t nx = g->size[0], ny = g->size[1], n = g->size[0] * g->size[1] * g->size[2];
  Mask::Pointer m = Mask::New();
  Mask::RegionType region;
  Mask::SizeType size;
  for (int a = 0; a < 3; ++a) size[a] = (itk::SizeValueType)(b.hi[a] - b.lo[a] + 3);
  region.SetSize(size);
  m->SetRegions(region);
  m->Allocate(true);
  unsigned char *mb = m->GetBufferPointer();
  const int64_t bx = size[0], by = size[1];
  auto src_index = [&](int64_t x, int64_t y, int64_t z) {
    return (b.lo[0] + x - 1) + nx * ((b.lo[1] + y - 1) + ny * (b.lo[2] + z - 1));
  };
  for (int64_t z = 1; z + 1 < (int64_t)size[2]; ++z)
    for (int64_t y = 1; y + 1 < by; ++y)
      for (int64_t x = 1; x + 1 < bx; ++x) mb[x + bx * (y + by * z)] = labels[src_index(x, y, z)] == value;
  if (lcc) {
    auto cc = itk::ConnectedComponentImageFilter<Mask, Comp>::New();
    cc->SetInput(m);
    if (threads > 0) cc->SetNumberOfWorkUnits((itk::ThreadIdType)threads);
    auto rel = itk::RelabelComponentImageFilter<Comp, Comp>::New();
    rel->SetInput(cc->GetOutput());
    rel->Update();
    const unsigned int *cb = rel->GetOutput()->GetBufferPointer();
    const size_t total = (size_t)bx * by * size[2];
    for (size_t v = 0; v < total; ++v)
      if (mb[v] && cb[v] != 1) mb[v] = 0;
  }
  if (fill) {
    auto fh = itk::BinaryFillholeImageFilter<Mask>::New();
    fh->SetInput(m);
    fh->SetForegroundValue(1);
    fh->SetFullyConnected(false);
    fh->Update();
    const unsigned char *fb = fh->GetOutput()->GetBufferPointer();
    const size_t total = (size_t)bx * by * size[2];
    for (size_t v = 0; v < total; ++v) mb[v] = mb[v] || fb[v];
  }
  for (int64_t z = 1; z + 1 < (int64_t)size[2]; ++z)
    for (int64_t y = 1; y + 1 < by; ++y)
      for (int64_t x = 1; x + 1 < bx; ++x) {
        const int64_t v = src_index(x, y, z);
        const bool keep = mb[x + bx * (y + by * z)];
        if (labels[v] == value && !keep) {
          labels[v] = 0;
          one_hot(probs, n, d, v, 0);
        } else if (keep && labels[v] == 0) {
          labels[v] = value;
          one_hot(probs, n, d, v, value);
        }
      }
  return nullptr;
}

}  // namespace

extern "C" mi_status *mi_postprocess_labels(const mi_card *c, const mi_geometry *g, uint8_t *labels, float *probs,
                                            const mi_decision *d, int threads) {
  bool any = c->fill_holes;
  for (size_t i = 0; i < c->n_labels; ++i) any = any || c->lcc[c->labels[i].value];
  if (!any) return nullptr;
  // Bounding boxes of every label in one pass.
  std::vector<Box> box(256);
  std::vector<char> seen(256, 0);
  for (int64_t z = 0, v = 0; z < g->size[2]; ++z)
    for (int64_t y = 0; y < g->size[1]; ++y)
      for (int64_t x = 0; x < g->size[0]; ++x, ++v) {
        const uint8_t l = labels[v];
        if (!l) continue;
        Box &b = box[l];
        const int64_t p[3] = {x, y, z};
        if (!seen[l]) {
          seen[l] = 1;
          for (int a = 0; a < 3; ++a) b.lo[a] = b.hi[a] = p[a];
        } else {
          for (int a = 0; a < 3; ++a) b.lo[a] = std::min(b.lo[a], p[a]), b.hi[a] = std::max(b.hi[a], p[a]);
        }
      }
  try {
    for (size_t i = 0; i < c->n_labels; ++i) {
      const uint8_t v = (uint8_t)c->labels[i].value;
      if (!seen[v] || (!c->lcc[v] && !c->fill_holes)) continue;
      MI_TRY(clean_label(g, labels, probs, d, v, c->lcc[v] != 0, c->fill_holes != 0, box[v], threads));
    }
  } catch (const std::bad_alloc &) {
    return mi_error(MI_ERR_NO_MEMORY, "postprocessing: out of memory");
  } catch (const std::exception &e) {
    return mi_error(MI_ERR_INTERNAL, "postprocessing (ITK): %s", e.what());
  }
  return nullptr;
}
