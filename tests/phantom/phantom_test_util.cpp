#include "phantom_test_util.h"

#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>

namespace fs = std::filesystem;

mi_phantom_options small_options(uint64_t seed) {
  mi_phantom_options o;
  mi_phantom_options_init(&o);
  o.seed = seed;
  o.size[0] = 64, o.size[1] = 56, o.size[2] = 24;
  return o;
}

PhantomPtr make_phantom(const mi_phantom_options &o) {
  mi_phantom *p = nullptr;
  mi_status *st = mi_phantom_generate(&o, &p);
  if (st) {
    ADD_FAILURE() << "mi_phantom_generate: " << mi_status_message(st);
    mi_status_free(st);
    return nullptr;
  }
  return PhantomPtr(p);
}

std::vector<std::string> list_dir(const std::string &dir) {
  std::vector<std::string> v;
  for (const auto &e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::unique_ptr<DicomFile> read_dicom(const std::string &path) {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  });
  auto f = std::make_unique<DicomFile>();
  f->path = path;
  f->ok = f->ff.loadFile(path.c_str()).good();
  return f;
}

std::string DicomFile::str(const DcmTagKey &tag, unsigned long pos) {
  OFString s;
  if (ds()->findAndGetOFString(tag, s, pos, OFTrue).bad()) return "<absent>";
  return s.c_str();
}

std::vector<double> ds_values_of(DcmItem *item, const DcmTagKey &tag) {
  std::vector<double> v;
  DcmElement *el = nullptr;
  if (item->findAndGetElement(tag, el, OFTrue).bad() || !el) return v;
  for (unsigned long i = 0; i < el->getVM(); i++) {
    Float64 x;
    if (el->getFloat64(x, i).good()) v.push_back(x);
  }
  return v;
}

std::vector<double> DicomFile::ds_values(const DcmTagKey &tag) { return ds_values_of(ds(), tag); }

std::string DicomFile::transfer_syntax() {
  OFString s;
  ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, s);
  return s.c_str();
}

std::vector<uint16_t> DicomFile::pixels() {
  std::vector<uint16_t> v;
  if (ds()->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad()) return v;
  const Uint16 *data = nullptr;
  unsigned long count = 0;
  if (ds()->findAndGetUint16Array(DCM_PixelData, data, &count).bad() || !data) return v;
  v.assign(data, data + count);
  return v;
}

std::vector<std::string> dciodvfy_errors(const std::string &path) {
  std::vector<std::string> errors;
  std::string target = path;
  std::string inflated;
  auto f = read_dicom(path);
  // dciodvfy cannot inflate; validate the same dataset re-encoded explicitly.
  if (f->transfer_syntax() == "1.2.840.10008.1.2.1.99") {
    inflated = path + ".inflated";
    std::string cmd = std::string(MI_DCMCONV) + " +te '" + path + "' '" + inflated + "' 2>&1";
    if (std::system(cmd.c_str()) != 0) return {"dcmconv failed on " + path};
    target = inflated;
  }
  std::string cmd = std::string(MI_DCIODVFY) + " '" + target + "' 2>&1";
  FILE *pipe = popen(cmd.c_str(), "r");
  if (!pipe) return {"cannot run dciodvfy"};
  char line[4096];
  while (fgets(line, sizeof line, pipe))
    if (std::string(line).find("Error") != std::string::npos) errors.push_back(line);
  int rc = pclose(pipe);
  if (rc == -1 || (WIFEXITED(rc) && WEXITSTATUS(rc) == 127)) errors.push_back("dciodvfy not runnable");
  if (!inflated.empty()) std::remove(inflated.c_str());
  return errors;
}
