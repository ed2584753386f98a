// Shared assertions for the dicom tests.
#ifndef MEDINFER_TESTS_DICOM_HELPERS_H
#define MEDINFER_TESTS_DICOM_HELPERS_H

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "medinfer/dicom.h"

// Takes ownership of a status; "" for success, else "code: message".
inline std::string take(mi_status *st) {
  if (!st) return "";
  std::string s = std::to_string((int)mi_status_code(st)) + ": " + mi_status_message(st);
  mi_status_free(st);
  return s;
}

struct VolumeDeleter {
  void operator()(mi_dicom_volume *v) const { mi_dicom_volume_free(v); }
};

inline void expect_geometry_near(const mi_geometry &a, const mi_geometry &b, double tol = 1e-4) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a.size[i], b.size[i]) << "size " << i;
    EXPECT_NEAR(a.origin[i], b.origin[i], tol) << "origin " << i;
    EXPECT_NEAR(a.spacing[i], b.spacing[i], tol) << "spacing " << i;
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], 1e-6) << "direction " << i;
}

#endif
