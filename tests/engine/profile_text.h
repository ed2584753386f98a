// A model's profile (mi_model_write_profile) as text, for tests that check
// what ran: node counts, GFLOP, kernels.
#ifndef MEDINFER_TESTS_PROFILE_TEXT_H
#define MEDINFER_TESTS_PROFILE_TEXT_H

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "medinfer/engine.h"

inline std::string profile_text(mi_model *m) {
  char *text = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  EXPECT_EQ(mi_model_write_profile(m, f, 0), nullptr);
  std::fclose(f);
  std::string s(text, len);
  std::free(text);
  return s;
}

#endif
