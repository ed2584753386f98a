// ITK helpers shared by the resampling and postprocessing files (C++ only).
#ifndef MEDINFER_SEG_ITK_UTIL_H
#define MEDINFER_SEG_ITK_UTIL_H

#include <itkImage.h>
#include <itkImportImageFilter.h>

#include "medinfer/geometry.h"

namespace mi_seg {

template <typename T>
typename itk::Image<T, 3>::Pointer wrap_image(const mi_geometry &g, const T *data) {
  using Image = itk::Image<T, 3>;
  using Import = itk::ImportImageFilter<T, 3>;
  typename Import::Pointer imp = Import::New();
  typename Import::SizeType size;
  typename Import::IndexType start;
  typename Import::RegionType region;
  double origin[3], spacing[3];
  typename Image::DirectionType dir;
  for (int a = 0; a < 3; ++a) {
    size[a] = (itk::SizeValueType)g.size[a];
    start[a] = 0;
    origin[a] = g.origin[a];
    spacing[a] = g.spacing[a];
    for (int c = 0; c < 3; ++c) dir(a, c) = g.direction[3 * a + c];
  }
  region.SetSize(size);
  region.SetIndex(start);
  imp->SetRegion(region);
  imp->SetOrigin(origin);
  imp->SetSpacing(spacing);
  imp->SetDirection(dir);
  const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
  // The caller keeps `data` alive; ITK never writes through an input.
  imp->SetImportPointer(const_cast<T *>(data), n, false);
  imp->Update();
  typename Image::Pointer img = imp->GetOutput();
  img->DisconnectPipeline();
  return img;
}

}  // namespace mi_seg

#endif
