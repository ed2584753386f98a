// The MedinferSegment CLI module driven the way 3D Slicer drives it.
//
// Library mode, as qSlicerCLILoadableModuleFactory.cxx and
// vtkSlicerCLIModuleLogic.cxx do: dlopen libMedinferSegmentLib.so, read the
// *data* symbol XMLModuleDescription as char*, resolve ModuleEntryPoint, call
// it with argv[0] = "slicer:%p", "--processinformationaddress %p" (a real
// ModuleProcessInformation with a progress callback), "--returnparameterfile",
// and std::cerr redirected into a string (Slicer's rdbuf swap).  The XML is
// parsed with expat (the parser ModuleDescriptionParser uses).
// Executable mode: --xml byte for byte, same labels, progress tags, SIGKILL.
#include <dlfcn.h>
#include <expat.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkMetaDataObject.h>
#include <itkNrrdImageIO.h>
#include <nifti1.h>
#include <znzlib.h>

#include "medinfer/phantom.h"

namespace {

// Our own copy of SlicerExecutionModel's ModuleProcessInformation layout.
struct ModuleProcessInformation {
  unsigned char Abort;
  float Progress;
  float StageProgress;
  char ProgressMessage[1024];
  void (*ProgressCallbackFunction)(void *);
  void *ProgressCallbackClientData;
  double ElapsedTime;
};
static_assert(offsetof(ModuleProcessInformation, Progress) == 4, "layout");
static_assert(offsetof(ModuleProcessInformation, ProgressMessage) == 12, "layout");
static_assert(offsetof(ModuleProcessInformation, ProgressCallbackFunction) == 1040, "layout");
static_assert(offsetof(ModuleProcessInformation, ElapsedTime) == 1056, "layout");
static_assert(sizeof(ModuleProcessInformation) == 1064, "layout");

typedef int (*EntryPoint)(int, char **);

// The module under test: the build tree's by default; an installed copy when
// MEDINFER_PLUGIN_LIB / MEDINFER_PLUGIN_EXE name one (tests/packaging), with
// MEDINFER_PLUGIN_WORK as the scratch folder.
const char *from_env(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && *v ? v : fallback;
}
const char *plugin_lib() { return from_env("MEDINFER_PLUGIN_LIB", MI_PLUGIN_LIB); }
const char *plugin_exe() { return from_env("MEDINFER_PLUGIN_EXE", MI_PLUGIN_EXE); }

std::string g_work;  // test folder with the phantom and cards

struct Lib {
  void *h = nullptr;
  const char *xml = nullptr;
  EntryPoint entry = nullptr;
  Lib() {
    h = dlopen(plugin_lib(), RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    xml = reinterpret_cast<const char *>(dlsym(h, "XMLModuleDescription"));
    entry = reinterpret_cast<EntryPoint>(dlsym(h, "ModuleEntryPoint"));
  }
  ~Lib() {
    if (h) dlclose(h);
  }
};

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool exists(const std::string &p) {
  struct stat sb;
  return stat(p.c_str(), &sb) == 0;
}

std::vector<std::string> list_dir(const std::string &dir) {
  std::vector<std::string> out;
  FILE *p = popen(("ls -A '" + dir + "'").c_str(), "r");
  char line[4096];
  while (p && fgets(line, sizeof line, p)) {
    std::string s = line;
    if (!s.empty() && s.back() == '\n') s.pop_back();
    out.push_back(s);
  }
  if (p) pclose(p);
  return out;
}

// One library call as Slicer makes it.
struct Call {
  ModuleProcessInformation info{};
  std::vector<float> progress;
  double abort_at = -1;  // set Abort once Progress reaches this
  std::chrono::steady_clock::time_point abort_time;
  int rc = -1;
  std::string err, out;

  static void callback(void *who) {
    Call *c = static_cast<Call *>(who);
    c->progress.push_back(c->info.Progress);
    if (c->abort_at >= 0 && !c->info.Abort && c->info.Progress >= c->abort_at) {
      c->info.Abort = 1;
      c->abort_time = std::chrono::steady_clock::now();
    }
  }

  void run(const Lib &lib, const std::vector<std::string> &args, const std::string &return_file = "") {
    info.ProgressCallbackFunction = callback;
    info.ProgressCallbackClientData = this;
    char target[64], addr[64];
    snprintf(target, sizeof target, "slicer:%p", reinterpret_cast<void *>(lib.entry));
    snprintf(addr, sizeof addr, "%p", static_cast<void *>(&info));
    std::vector<std::string> a = {target, "--processinformationaddress", addr};
    if (!return_file.empty()) a.insert(a.end(), {"--returnparameterfile", return_file});
    a.insert(a.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &s : a) argv.push_back(&s[0]);
    argv.push_back(nullptr);
    std::ostringstream cout_s, cerr_s;
    std::streambuf *oc = std::cout.rdbuf(cout_s.rdbuf()), *oe = std::cerr.rdbuf(cerr_s.rdbuf());
    rc = lib.entry((int)a.size(), argv.data());
    std::cout.rdbuf(oc);
    std::cerr.rdbuf(oe);
    err = cerr_s.str();
    out = cout_s.str();
  }
};

// Reads a label/scalar NRRD with ITK (explicit IO), with its dictionary.
struct Vol {
  itk::Image<float, 3>::Pointer img;
  std::map<std::string, std::string> meta;
  bool read(const std::string &path) {
    auto r = itk::ImageFileReader<itk::Image<float, 3>>::New();
    r->SetImageIO(itk::NrrdImageIO::New());
    r->SetFileName(path);
    try {
      r->Update();
    } catch (const itk::ExceptionObject &e) {
      ADD_FAILURE() << e.GetDescription();
      return false;
    }
    img = r->GetOutput();
    const auto &d = r->GetImageIO()->GetMetaDataDictionary();
    for (const auto &k : d.GetKeys()) {
      std::string v;
      if (itk::ExposeMetaData<std::string>(d, k, v)) meta[k] = v;
    }
    return true;
  }
  size_t n() const {
    auto s = img->GetLargestPossibleRegion().GetSize();
    return s[0] * s[1] * s[2];
  }
};

void expect_same_grid(const Vol &a, const Vol &b) {
  EXPECT_EQ(a.img->GetLargestPossibleRegion().GetSize(), b.img->GetLargestPossibleRegion().GetSize());
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(a.img->GetOrigin()[d], b.img->GetOrigin()[d], 1e-4);
    EXPECT_NEAR(a.img->GetSpacing()[d], b.img->GetSpacing()[d], 1e-6);
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(a.img->GetDirection()[d][c], b.img->GetDirection()[d][c], 1e-6);
  }
}

class Plugin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_work = from_env("MEDINFER_PLUGIN_WORK", MI_PLUGIN_WORK);
    system(("rm -rf '" + g_work + "' && mkdir -p '" + g_work + "/out'").c_str());
    // Phantom CT (oblique: the output must keep a non-trivial direction).
    for (int oblique = 0; oblique < 2; ++oblique) {
      mi_phantom_options o;
      mi_phantom_options_init(&o);
      o.seed = 4242;
      o.size[0] = 96, o.size[1] = 96, o.size[2] = 48;
      o.orientation = oblique ? MI_PHANTOM_OBLIQUE : MI_PHANTOM_AXIAL;
      mi_phantom *p = nullptr;
      mi_status *st = mi_phantom_generate(&o, &p);
      ASSERT_EQ(st, nullptr) << mi_status_message(st);
      st = mi_phantom_write_truth(p, (g_work + (oblique ? "/oblique" : "/axial")).c_str());
      ASSERT_EQ(st, nullptr) << mi_status_message(st);
      mi_phantom_free(p);
    }
    // Threshold "model": identity network, voxels >= 350 HU are spine (700 HU
    // nominal; nothing else in the phantom is above 200), labelled 1 (sigmoid
    // channel 0), resampled to 4 x 4 x 7.5 mm and back.
    std::ofstream(g_work + "/spine.card.json") << R"({"name": "spine-threshold", "version": "1", "task": "segmentation",
      "model": ")" << MI_SEG_TEST_MODELS << R"(/identity3d.onnx",
      "applies_to": {"modality": ["CT"]},
      "input": {"channels": 1, "spacing": [4.0, 4.0, 7.5], "orientation": "native",
        "preprocessing": [{"type": "zscore", "mean": 350, "std": 1}]},
      "inference": {"mode": "3d", "patch_size": [32, 32, 16], "overlap": 0.5, "batch": 2},
      "output": {"activation": "sigmoid", "threshold": 0.5, "labels": [{"value": 1, "name": "Spine",
        "color": [241, 214, 145], "category": {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"},
        "type": {"scheme": "SCT", "value": "421060004", "meaning": "Spinal column"}}],
        "postprocessing": {"largest_component": false}}})";
    // A 2D volume.
    std::ofstream f2(g_work + "/flat.nrrd", std::ios::binary);
    f2 << "NRRD0004\ntype: int16\ndimension: 2\nsizes: 4 4\nencoding: raw\nendian: little\n\n";
    f2 << std::string(32, '\0');
    std::ofstream(g_work + "/garbage.nrrd") << "this is not an image\n";
  }
};

std::string card() { return g_work + "/spine.card.json"; }
std::string unet() { return std::string(MI_SEG_TEST_MODELS) + "/tiny-unet.card.json"; }

// ------------------------------------------------------------- discovery

TEST_F(Plugin, LibraryExportsWhatSlicerResolves) {
  Lib lib;
  ASSERT_NE(lib.h, nullptr) << dlerror();
  ASSERT_NE(lib.xml, nullptr) << "XMLModuleDescription data symbol missing";
  ASSERT_NE(lib.entry, nullptr) << "ModuleEntryPoint missing";
  EXPECT_EQ(strncmp(lib.xml, "<?xml ", 6), 0);
  // The pipeline's own symbols stay hidden (they would clash inside Slicer).
  EXPECT_EQ(dlsym(lib.h, "mi_segmenter_run"), nullptr);
  EXPECT_EQ(dlsym(lib.h, "GetXMLModuleDescription"), nullptr);
  // Slicer's file-name rule (qSlicerUtils::isCLILoadableModule).
  std::string name = plugin_lib();
  name = name.substr(name.rfind('/') + 1);
  EXPECT_EQ(name, "libMedinferSegmentLib.so");
}

struct XmlState {
  std::vector<std::string> stack;
  std::string text;
  struct Param {
    std::string tag, name, longflag, flag, index, channel, def, hidden;
    std::vector<std::string> elements;
  };
  std::vector<Param> params;
  std::map<std::string, std::string> top;  // category, title, ...
};

const std::set<std::string> kParamTags = {
    "integer", "float", "double", "string", "boolean", "integer-vector", "float-vector", "string-vector",
    "double-vector", "point", "pointfile", "region", "string-enumeration", "integer-enumeration",
    "float-enumeration", "double-enumeration", "file", "directory", "transform", "image", "geometry", "table",
    "measurement"};  // ModuleDescriptionParser.cxx startElement

void XMLCALL on_start(void *u, const XML_Char *name, const XML_Char **attrs) {
  XmlState *s = static_cast<XmlState *>(u);
  s->text.clear();
  if (s->stack.size() == 2 && s->stack[1] == "parameters") {
    XmlState::Param p;
    p.tag = name;
    for (int i = 0; attrs[i]; i += 2)
      if (!strcmp(attrs[i], "hidden")) p.hidden = attrs[i + 1];
    s->params.push_back(p);
  }
  s->stack.push_back(name);
}

void XMLCALL on_end(void *u, const XML_Char *name) {
  XmlState *s = static_cast<XmlState *>(u);
  std::string t = s->text;
  t.erase(0, t.find_first_not_of(" \n\t"));
  t.erase(t.find_last_not_of(" \n\t") + 1);
  if (s->stack.size() == 2) s->top[name] = t;
  if (s->stack.size() == 4 && !s->params.empty()) {
    auto &p = s->params.back();
    std::string n = name;
    if (n == "name") p.name = t;
    else if (n == "longflag") p.longflag = t;
    else if (n == "flag") p.flag = t;
    else if (n == "index") p.index = t;
    else if (n == "channel") p.channel = t;
    else if (n == "default") p.def = t;
    else if (n == "element") p.elements.push_back(t);
  }
  s->stack.pop_back();
  s->text.clear();
}

void XMLCALL on_text(void *u, const XML_Char *t, int len) { static_cast<XmlState *>(u)->text.append(t, len); }

TEST_F(Plugin, XmlParsesAsSlicerExpects) {
  Lib lib;
  ASSERT_NE(lib.xml, nullptr);
  XmlState s;
  XML_Parser p = XML_ParserCreate(nullptr);
  XML_SetUserData(p, &s);
  XML_SetElementHandler(p, on_start, on_end);
  XML_SetCharacterDataHandler(p, on_text);
  ASSERT_EQ(XML_Parse(p, lib.xml, (int)strlen(lib.xml), 1), XML_STATUS_OK)
      << XML_ErrorString(XML_GetErrorCode(p)) << " at line " << XML_GetCurrentLineNumber(p);
  XML_ParserFree(p);
  EXPECT_EQ(s.top["category"], "Segmentation");
  EXPECT_EQ(s.top["title"], "Medinfer Segment");
  for (const char *k : {"description", "version", "documentation-url", "license", "contributor", "acknowledgements"})
    EXPECT_FALSE(s.top[k].empty()) << k;
  std::map<std::string, XmlState::Param> by_name;
  for (auto &q : s.params) {
    if (q.tag == "label" || q.tag == "description") continue;
    EXPECT_TRUE(kParamTags.count(q.tag)) << "unknown parameter type <" << q.tag << ">";
    EXPECT_FALSE(q.name.empty()) << "<" << q.tag << "> without a name";
    const bool ret = q.channel == "output" && q.longflag.empty() && q.flag.empty() && q.index.empty();
    const bool simple = q.tag == "string" || q.tag == "integer" || q.tag == "float" || q.tag == "double";
    EXPECT_TRUE(!q.longflag.empty() || !q.flag.empty() || !q.index.empty() || (ret && simple))
        << q.name << ": no flag or index (and not a return parameter)";
    EXPECT_FALSE(!q.index.empty() && !q.longflag.empty()) << q.name << ": both index and flag";
    by_name[q.name] = q;
  }
  ASSERT_TRUE(by_name.count("AllowInMemoryTransfer"));
  EXPECT_EQ(by_name["AllowInMemoryTransfer"].tag, "boolean");
  EXPECT_EQ(by_name["AllowInMemoryTransfer"].hidden, "true");
  EXPECT_EQ(by_name["AllowInMemoryTransfer"].def, "false");
  EXPECT_EQ(by_name["inputVolume"].index, "0");
  EXPECT_EQ(by_name["outputVolume"].index, "1");
  EXPECT_EQ(by_name["outputVolume"].channel, "output");
  EXPECT_FALSE(by_name["model"].elements.empty());
  // The compute modes: booleans, which Slicer passes as the bare flag when ticked.
  for (const char *mode : {"fastMath", "bf16"}) {
    ASSERT_TRUE(by_name.count(mode)) << mode;
    EXPECT_EQ(by_name[mode].tag, "boolean") << mode;
    EXPECT_EQ(by_name[mode].longflag, mode);
    EXPECT_EQ(by_name[mode].def, "false") << mode;
  }
}

// Runs the executable; returns its exit status, stdout and stderr.
int run_exe(const std::vector<std::string> &args, std::string &out, std::string &err) {
  std::string cmd = std::string("'") + plugin_exe() + "'";
  for (auto &a : args) cmd += " '" + a + "'";
  const std::string ef = g_work + "/exe.stderr";
  cmd += " 2>'" + ef + "'";
  FILE *p = popen(cmd.c_str(), "r");
  out.clear();
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  err = slurp(ef);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST_F(Plugin, ExecutableXmlEqualsLibrary) {
  Lib lib;
  ASSERT_NE(lib.xml, nullptr);
  std::string out, err;
  EXPECT_EQ(run_exe({"--xml"}, out, err), 0);
  EXPECT_EQ(out, std::string(lib.xml));
  EXPECT_EQ(err, "") << "Slicer treats stderr output of --xml as an error";
}

// ------------------------------------------------------------- running

double dice(const Vol &out, const std::string &truth_path, int truth_label, int out_label) {
  std::string raw = slurp(truth_path);
  const size_t h = raw.find("\n\n");
  const uint8_t *t = reinterpret_cast<const uint8_t *>(raw.data() + h + 2);
  const float *o = out.img->GetBufferPointer();
  double inter = 0, a = 0, b = 0;
  for (size_t i = 0; i < out.n(); ++i) {
    const bool x = t[i] == truth_label, y = (int)o[i] == out_label;
    inter += x && y, a += x, b += y;
  }
  return a + b > 0 ? 2 * inter / (a + b) : 0;
}

TEST_F(Plugin, RepeatedLibraryCalls) {
  Lib lib;
  ASSERT_NE(lib.entry, nullptr);
  const int runs = getenv("MI_PLUGIN_RUNS") ? atoi(getenv("MI_PLUGIN_RUNS")) : 3;
  for (int r = 0; r < runs; ++r) {
    const std::string in = g_work + (r % 2 ? "/oblique" : "/axial") + "/image.nrrd";
    const std::string outv = g_work + "/out/labels.nrrd", seg = g_work + "/out/result.seg.nrrd",
                      ctbl = g_work + "/out/colors.ctbl", params = g_work + "/out/return.params";
    unlink(outv.c_str()), unlink(seg.c_str()), unlink(ctbl.c_str()), unlink(params.c_str());
    Call c;
    c.run(lib, {"--modelCard", card(), "--device", "cpu", "--threads", "2", "--outputSegmentationFile", seg,
                "--outputColorTable", ctbl, in, outv},
          params);
    ASSERT_EQ(c.rc, 0) << c.err;
    // Progress through the callback, never decreasing, ending at 1.
    ASSERT_GE(c.progress.size(), 5u);
    for (size_t i = 1; i < c.progress.size(); ++i) EXPECT_GE(c.progress[i], c.progress[i - 1]) << i;
    EXPECT_FLOAT_EQ(c.progress.back(), 1.0f);
    Vol vin, vout, vseg;
    ASSERT_TRUE(vin.read(in));
    ASSERT_TRUE(vout.read(outv));
    ASSERT_TRUE(vseg.read(seg));
    expect_same_grid(vin, vout);
    expect_same_grid(vin, vseg);
    const double d = dice(vout, g_work + (r % 2 ? "/oblique" : "/axial") + "/labels.nrrd", 9, 1);
    EXPECT_GE(d, 0.90) << "spine Dice vs phantom truth, run " << r;
    // Slicer segmentation header (vtkMRMLSegmentationStorageNode keys).
    EXPECT_EQ(vout.meta["Segment0_Name"], "Spine");
    EXPECT_EQ(vout.meta["Segment0_LabelValue"], "1");
    EXPECT_EQ(vout.meta["Segment0_Layer"], "0");
    EXPECT_EQ(vout.meta["Segmentation_MasterRepresentation"], "Binary labelmap");
    EXPECT_NE(vout.meta["Segment0_Tags"].find("TerminologyEntry:Segmentation category and type - 3D Slicer General "
                                              "Anatomy list~SCT^123037004^Anatomical Structure~SCT^421060004^Spinal column~"),
              std::string::npos)
        << vout.meta["Segment0_Tags"];
    EXPECT_FALSE(vout.meta["Segment0_Extent"].empty());
    EXPECT_EQ(vseg.meta["Segment0_Color"], vout.meta["Segment0_Color"]);
    EXPECT_NE(slurp(ctbl).find("\n1 Spine 241 214 145 255\n"), std::string::npos) << slurp(ctbl);
    EXPECT_EQ(slurp(params).rfind("segmentVolumes = Spine: ", 0), 0u) << slurp(params);
    for (auto &f : list_dir(g_work + "/out")) EXPECT_EQ(f.find(".tmp-"), std::string::npos) << f;
  }
}

TEST_F(Plugin, MultiLabelModel) {
  Lib lib;
  const std::string outv = g_work + "/out/unet.nrrd";
  Call c;
  c.run(lib, {"--modelCard", unet(), "--threads", "2", g_work + "/oblique/image.nrrd", outv});
  ASSERT_EQ(c.rc, 0) << c.err;
  Vol vin, vout;
  ASSERT_TRUE(vin.read(g_work + "/oblique/image.nrrd"));
  ASSERT_TRUE(vout.read(outv));
  expect_same_grid(vin, vout);
  EXPECT_EQ(vout.meta["Segment0_Name"], "Liver");
  EXPECT_EQ(vout.meta["Segment1_Name"], "Spleen");
  EXPECT_EQ(vout.meta["Segment2_Name"], "Heart");
  EXPECT_EQ(vout.meta["Segment2_LabelValue"], "3");
  // Made as any writer makes a file: 0666 less the umask (it was 0600).
  const mode_t mask = umask(0);
  umask(mask);
  struct stat sb;
  ASSERT_EQ(stat(outv.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0666 & ~mask);
}

// Per label value of `a` or `b` (0 excluded), its Dice between the two.
std::map<int, double> label_dice(const Vol &a, const Vol &b) {
  std::map<int, double> inter, na, nb, d;
  const float *x = a.img->GetBufferPointer(), *y = b.img->GetBufferPointer();
  for (size_t i = 0; i < a.n(); ++i) {
    const int u = (int)x[i], v = (int)y[i];
    if (u) na[u]++;
    if (v) nb[v]++;
    if (u && u == v) inter[u]++;
  }
  for (auto &[k, n] : na) d[k] = 2 * inter[k] / (n + nb[k]);
  for (auto &[k, n] : nb)
    if (!na.count(k)) d[k] = 0;
  return d;
}

// The compute modes as Slicer sets them (the boolean flags --fastMath and
// --bf16, present when ticked), on the demo model: each says on the device
// line that it ran, and its labels agree with fp32's (bf16 mode's bound,
// Dice >= 0.99 per organ).  Where the CPU lacks a mode (bf16: AVX512-BF16;
// fast: AVX2 or AVX-512), it runs fp32: the device line says so and why, the
// labels are fp32's exactly.  Whether the CPU has a mode is
// asked of the engine the module loaded (not linked here: the packaging test
// runs this against an installed module, which must find its own engine).
// Last, the executable at the portable level (MEDINFER_ISA=generic, as a
// non-x86 build runs), which has neither mode, so that the fallback is run
// on any CPU.
TEST_F(Plugin, ComputeModesAgreeWithFp32) {
  const std::string fast_lacks = "fast mode needs a CPU with AVX2 or AVX-512",
                    bf16_lacks = "bf16 mode needs a CPU with AVX512-BF16";
  Lib lib;
  const std::string in = g_work + "/oblique/image.nrrd";
  auto run = [&](const std::vector<std::string> &flags, const std::string &device, Vol &v) {
    const std::string outv = g_work + "/out/mode.nrrd";
    unlink(outv.c_str());
    std::vector<std::string> args = {"--modelCard", MI_DEMO_CARD, "--threads", "2"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {in, outv});
    Call c;
    c.run(lib, args);
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_NE(c.out.find("MedinferSegment: device: " + device + "\n"), std::string::npos) << c.out;
    ASSERT_TRUE(v.read(outv));
  };
  Vol exact;
  ASSERT_NO_FATAL_FAILURE(run({}, "cpu", exact));
  ASSERT_GE(label_dice(exact, exact).size(), 3u) << "the phantom should show several organs";
  struct Mode {
    std::string flag;
    bool here;  // takes effect on this CPU
    std::string device, lacks;  // the device line where it does; why not where it does not
  };
  using Available = int (*)(void);
  const auto fast = reinterpret_cast<Available>(dlsym(lib.h, "mi_fast_available"));
  const auto bf16 = reinterpret_cast<Available>(dlsym(lib.h, "mi_bf16_available"));
  ASSERT_TRUE(fast && bf16) << "the module's engine has no mi_fast_available / mi_bf16_available";
  for (const Mode &m : {Mode{"--fastMath", fast() != 0, "cpu (fast)", fast_lacks},
                        Mode{"--bf16", bf16() != 0, "cpu (bf16)", bf16_lacks}}) {
    if (!m.here) std::cout << "[ note     ] " << m.flag << ": not on this CPU, fp32 expected" << std::endl;
    const std::string &flag = m.flag;
    Vol v;
    ASSERT_NO_FATAL_FAILURE(run({flag}, m.here ? m.device : "cpu (fp32; " + m.lacks + ")", v));
    expect_same_grid(exact, v);
    const std::map<int, double> d = label_dice(exact, v);
    for (const auto &[label, dice] : d) {
      EXPECT_GE(dice, 0.99) << flag << ", label " << label;
      if (!m.here) {
        EXPECT_EQ(dice, 1.0) << "fp32 twice, label " << label;
      }
    }
    std::cout << "[ dice     ] " << flag << ":";
    for (const auto &[label, dice] : d) std::cout << " " << label << " " << dice;
    std::cout << std::endl;
  }
  const char *isa = getenv("MEDINFER_ISA");
  const std::string saved = isa ? isa : "", outv = g_work + "/out/generic.nrrd";
  setenv("MEDINFER_ISA", "generic", 1);
  std::string out, err;
  const int rc = run_exe({"--modelCard", card(), "--fastMath", "--bf16", g_work + "/axial/image.nrrd", outv}, out, err);
  if (isa) setenv("MEDINFER_ISA", saved.c_str(), 1);
  else unsetenv("MEDINFER_ISA");
  EXPECT_EQ(rc, 0) << err;
  EXPECT_NE(out.find("MedinferSegment: device: cpu (fp32; " + fast_lacks + "; " + bf16_lacks + ")\n"), std::string::npos)
      << out;
  EXPECT_TRUE(exists(outv));
}

TEST_F(Plugin, AbortAt30PercentLeavesNothing) {
  Lib lib;
  const std::string dir = g_work + "/abort";
  system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
  Call c;
  c.abort_at = 0.3;
  c.run(lib, {"--modelCard", unet(), "--threads", "2", "--outputSegmentationFile", dir + "/s.seg.nrrd",
              "--outputColorTable", dir + "/c.ctbl", g_work + "/axial/image.nrrd", dir + "/labels.nrrd"},
        dir + "/return.params");
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.abort_time).count();
  EXPECT_NE(c.rc, 0);
  EXPECT_EQ(c.info.Abort, 1);
  EXPECT_LT(secs, 5.0) << "slow to stop after Abort";
  EXPECT_NE(c.err.find("cancelled"), std::string::npos) << c.err;
  EXPECT_TRUE(list_dir(dir).empty()) << "outputs left after abort";
}

// ------------------------------------------------------------- bad input

struct Bad {
  const char *what;
  std::vector<std::string> args;
  const char *expect;  // substring of the message
};

TEST_F(Plugin, BadInputThroughBothForms) {
  Lib lib;
  const std::string o = g_work + "/out/bad.nrrd";
  // An input that an output names: it must come through unchanged.
  const std::string own = g_work + "/own.nrrd", own_bytes = slurp(g_work + "/axial/image.nrrd");
  std::ofstream(own, std::ios::binary) << own_bytes;
  const std::vector<Bad> cases = {
      {"unreadable", {"--modelCard", card(), g_work + "/missing.nrrd", o}, "missing.nrrd"},
      {"garbage", {"--modelCard", card(), g_work + "/garbage.nrrd", o}, "garbage.nrrd"},
      {"2D", {"--modelCard", card(), g_work + "/flat.nrrd", o}, "2D"},
      {"model", {"--model", "no-such-model", g_work + "/axial/image.nrrd", o}, "no-such-model"},
      {"unwritable", {"--modelCard", card(), g_work + "/axial/image.nrrd", "/nonexistent-dir/x.nrrd"}, "nonexistent-dir"},
      {"no output", {"--modelCard", card(), g_work + "/axial/image.nrrd"}, "output"},
      {"no model", {g_work + "/axial/image.nrrd", o}, "model"},
      {"bad device", {"--device", "tpu", "--modelCard", card(), g_work + "/axial/image.nrrd", o}, "--device"},
      {"bad threads", {"--threads", "many", "--modelCard", card(), g_work + "/axial/image.nrrd", o}, "--threads"},
      {"switch with a value", {"--bf16=false", "--modelCard", card(), g_work + "/axial/image.nrrd", o}, "--bf16 takes no value"},
      {"in-memory", {"--modelCard", card(), "slicer:0x1234#vtkMRMLScalarVolumeNode1", o}, "AllowInMemoryTransfer"},
      {"output is the input", {"--modelCard", card(), own, own}, "input volume"},
      {"output is the input, another name", {"--modelCard", card(), own, g_work + "/out/../own.nrrd"}, "input volume"},
      {"segmentation file is the input", {"--modelCard", card(), "--outputSegmentationFile", own, own, o}, "input volume"},
      {"two outputs one file", {"--modelCard", card(), "--outputColorTable", o, own, o}, "two outputs"},
  };
  for (const auto &b : cases) {
    Call c;
    c.run(lib, b.args);
    EXPECT_NE(c.rc, 0) << b.what;
    EXPECT_NE(c.err.find(b.expect), std::string::npos) << b.what << ": " << c.err;
    EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << b.what << ": one line expected: " << c.err;
    std::string out, err;
    EXPECT_NE(run_exe(b.args, out, err), 0) << b.what;
    EXPECT_NE(err.find(b.expect), std::string::npos) << b.what << " (executable): " << err;
    EXPECT_FALSE(exists(o)) << b.what;
  }
  EXPECT_TRUE(slurp(own) == own_bytes) << "an input was overwritten";
}

// ------------------------------------------------------------- volume headers
// A 16 x 16 x 8 int16 volume (4 x 4 x 7.5 mm) as NRRD and as NIfTI-1, each
// file with one header field at a value no scanner writes, or its voxel
// data cut short, run through the library entry point as Slicer calls it:
// the module never crashes or hangs (ITK's NIfTI reader called abort() on a
// NaN sform and looped forever on one of 3e38 mm steps), refuses on one
// line naming the file (NRRD's refusals came as teem's error stack, a line
// per function), and never reads voxels the file lacks (niftilib filled
// them with zeros).

constexpr int kEdNx = 16, kEdNy = 16, kEdNz = 8;

std::string edit_voxels() {
  std::string v(kEdNx * kEdNy * kEdNz * sizeof(int16_t), '\0');
  for (int i = 0; i < kEdNx * kEdNy * kEdNz; ++i) {
    const int16_t x = (int16_t)(i % 900);
    memcpy(&v[i * sizeof x], &x, sizeof x);
  }
  return v;
}

struct VolumeCase {
  std::string what, path;
  const char *refusal;  // the run must refuse, saying this ("": in any words; nullptr: it may read or refuse)
  bool must_read;
};

// NRRD: the base header with field `key` set to `value` ("-": left out).
void write_nrrd(const std::string &path, const std::string &key, const std::string &value, const std::string &data) {
  const std::vector<std::pair<std::string, std::string>> base = {
      {"type", "int16"},
      {"dimension", "3"},
      {"space", "left-posterior-superior"},
      {"sizes", "16 16 8"},
      {"space directions", "(4,0,0) (0,4,0) (0,0,7.5)"},
      {"kinds", "domain domain domain"},
      {"endian", "little"},
      {"encoding", "raw"},
      {"space origin", "(-30,-30,-30)"}};
  std::ofstream f(path, std::ios::binary);
  f << "NRRD0004\n";
  bool found = false;
  for (const auto &kv : base) {
    const bool edited = kv.first == key;
    found = found || edited;
    if (!edited) f << kv.first << ": " << kv.second << "\n";
    else if (value != "-") f << key << ": " << value << "\n";
  }
  if (!found && !key.empty()) f << key << ": " << value << "\n";
  f << "\n" << data;
}

nifti_1_header nifti_base() {
  nifti_1_header h;
  memset(&h, 0, sizeof h);
  h.sizeof_hdr = 348;
  const short dim[8] = {3, kEdNx, kEdNy, kEdNz, 1, 1, 1, 1};
  const float pixdim[8] = {1, 4, 4, 7.5f, 1, 1, 1, 1};
  memcpy(h.dim, dim, sizeof dim);
  memcpy(h.pixdim, pixdim, sizeof pixdim);
  h.datatype = NIFTI_TYPE_INT16, h.bitpix = 16;
  h.vox_offset = 352;
  h.scl_slope = 1;
  h.xyzt_units = NIFTI_UNITS_MM;
  h.qform_code = h.sform_code = NIFTI_XFORM_SCANNER_ANAT;
  h.qoffset_x = h.qoffset_y = h.qoffset_z = -30;
  const float sx[4] = {4, 0, 0, -30}, sy[4] = {0, 4, 0, -30}, sz[4] = {0, 0, 7.5f, -30};
  memcpy(h.srow_x, sx, sizeof sx), memcpy(h.srow_y, sy, sizeof sy), memcpy(h.srow_z, sz, sizeof sz);
  memcpy(h.magic, "n+1", 4);
  return h;
}

// NIfTI-1, one file: header, an empty extension flag, data; gzip'd by znzlib.
void write_nifti(const std::string &path, const nifti_1_header &h, const std::string &data, bool gz) {
  std::string bytes(reinterpret_cast<const char *>(&h), sizeof h);
  bytes += std::string(4, '\0') + data;
  znzFile f = znzopen(path.c_str(), "wb", gz ? 1 : 0);
  ASSERT_FALSE(znz_isnull(f)) << path;
  ASSERT_EQ(znzwrite(bytes.data(), 1, bytes.size(), f), bytes.size()) << path;
  Xznzclose(&f);
}

std::vector<VolumeCase> volume_cases(const std::string &dir) {
  const std::string vox = edit_voxels();
  std::vector<VolumeCase> cases;
  int n = 0;
  auto nrrd = [&](const std::string &key, const std::string &value, const char *refusal = nullptr) {
    const std::string path = dir + "/n" + std::to_string(n++) + ".nrrd";
    write_nrrd(path, key, value, vox);
    cases.push_back({"NRRD " + key + ": " + value, path, refusal, key.empty()});
  };
  nrrd("", "");  // as written, read
  for (const char *v : {"0 16 8", "-1 16 8", "16 16", "16 16 8 3", "16 16 1", "4294967296 4294967296 4294967296",
                        "nan 16 8"})
    nrrd("sizes", v);
  nrrd("sizes", "65536 65536 65536", "more than 2^31");
  nrrd("sizes", "2048 1024 1025", "more than 2^31");
  for (const char *v : {"(0,0,0) (0,4,0) (0,0,7.5)", "(nan,0,0) (0,4,0) (0,0,7.5)", "(inf,0,0) (0,4,0) (0,0,7.5)",
                        "(4,0,0) (4,0,0) (0,0,7.5)", "(1e308,0,0) (0,1e308,0) (0,0,1e308)",
                        "(-4,0,0) (0,-4,0) (0,0,-7.5)", "(4,0) (0,4) (0,7.5)", "none (0,4,0) (0,0,7.5)", "-"})
    nrrd("space directions", v);
  for (const char *v : {"(nan,0,0)", "(inf,-inf,0)", "(1e308,1e308,-1e308)", "(0,0)", "-"}) nrrd("space origin", v);
  for (const char *v : {"uint8", "int32", "double", "block", "-"}) nrrd("type", v);
  for (const char *v : {"0", "-1", "17", "4"}) nrrd("dimension", v);
  for (const char *v : {"gzip", "bzip2", "hex", "zstd"}) nrrd("encoding", v);
  nrrd("endian", "big");
  nrrd("kinds", "vector domain domain");
  nrrd("data file", "/nonexistent/voxels.raw");
  nrrd("byte skip", "9223372036854775807");
  nrrd("line skip", "2147483647");
  nrrd("measurement frame", "(nan,0,0) (0,0,0) (0,0,0)");
  const std::string cut = vox.substr(0, 1000), none;
  for (const std::string *data : {&cut, &none}) {  // refused, whatever teem's words
    const std::string path = dir + "/n" + std::to_string(n++) + ".nrrd";
    write_nrrd(path, "", "", *data);
    cases.push_back({"NRRD with " + std::to_string(data->size()) + " bytes of data", path, "", false});
  }

  using Edit = std::function<void(nifti_1_header &)>;
  auto nifti = [&](const std::string &what, const Edit &edit, const char *refusal = nullptr,
                   const std::string *data = nullptr, bool gz = false) {
    const std::string path = dir + "/n" + std::to_string(n++) + (gz ? ".nii.gz" : ".nii");
    nifti_1_header h = nifti_base();
    if (edit) edit(h);
    write_nifti(path, h, data ? *data : vox, gz);
    cases.push_back({"NIfTI " + what, path, refusal, !edit && !data});
  };
  const float nan = NAN, inf = INFINITY;
  nifti("as written", nullptr);
  nifti("as written, gzip", nullptr, nullptr, nullptr, true);
  nifti("dim[0] 0", [](nifti_1_header &h) { h.dim[0] = 0; });
  nifti("dim[0] -1", [](nifti_1_header &h) { h.dim[0] = -1; });
  nifti("dim[0] 8", [](nifti_1_header &h) { h.dim[0] = 8; });
  nifti("dim[0] 2", [](nifti_1_header &h) { h.dim[0] = 2; });
  nifti("dim[1] 0", [](nifti_1_header &h) { h.dim[1] = 0; });
  nifti("dim[1] -16", [](nifti_1_header &h) { h.dim[1] = -16; });
  nifti("dims 32767", [](nifti_1_header &h) { h.dim[1] = h.dim[2] = h.dim[3] = 32767; }, "more than 2^31");
  nifti("dims 32 (64 KB of voxels), 4 KB in the file", [](nifti_1_header &h) { h.dim[1] = h.dim[2] = h.dim[3] = 32; }, "truncated");
  nifti("dim[3] 1", [](nifti_1_header &h) { h.dim[3] = 1; });
  nifti("4D of 2", [](nifti_1_header &h) { h.dim[0] = 4, h.dim[4] = 2; }, "more than 3 dimensions");
  nifti("4D of 0", [](nifti_1_header &h) { h.dim[0] = 4, h.dim[4] = 0; });
  for (short dt : {0, 1, 2, 16, 32, 64, 128, 512, 1536, 2304, 9999})
    nifti("datatype " + std::to_string(dt), [dt](nifti_1_header &h) { h.datatype = dt; });
  for (float v : {0.f, -4.f, nan, inf, 1e38f})
    nifti("pixdim[1] " + std::to_string(v) + ", no transforms",
          [v](nifti_1_header &h) { h.pixdim[1] = v, h.qform_code = h.sform_code = 0; });
  nifti("pixdim[0] NaN, no transforms", [](nifti_1_header &h) { h.pixdim[0] = NAN, h.qform_code = h.sform_code = 0; });
  for (float v : {0.f, -352.f, 351.f, nan, inf, 3.4e38f})
    nifti("vox_offset " + std::to_string(v), [v](nifti_1_header &h) { h.vox_offset = v; });
  nifti("vox_offset 353", [](nifti_1_header &h) { h.vox_offset = 353; }, "truncated");
  nifti("vox_offset 1e9", [](nifti_1_header &h) { h.vox_offset = 1e9f; }, "truncated");
  for (float v : {0.f, nan, inf, 1e38f})
    nifti("scl_slope " + std::to_string(v), [v](nifti_1_header &h) { h.scl_slope = v; });
  nifti("scl_inter NaN", [](nifti_1_header &h) { h.scl_inter = NAN; });
  for (float v : {nan, inf, 2.f})
    nifti("quatern_b " + std::to_string(v) + ", no sform", [v](nifti_1_header &h) { h.quatern_b = v, h.sform_code = 0; });
  nifti("qoffset_x NaN, no sform", [](nifti_1_header &h) { h.qoffset_x = NAN, h.sform_code = 0; });
  nifti("srow_x[0] NaN", [](nifti_1_header &h) { h.srow_x[0] = NAN; }, "sform");
  nifti("srow_y[1] inf", [](nifti_1_header &h) { h.srow_y[1] = INFINITY; }, "sform");
  nifti("srow_x[3] -inf", [](nifti_1_header &h) { h.srow_x[3] = -INFINITY; }, "sform");
  nifti("srow NaN, sform_code 0", [](nifti_1_header &h) { h.srow_x[0] = NAN, h.sform_code = 0; });
  nifti("srows 0", [](nifti_1_header &h) { memset(h.srow_x, 0, 12 * sizeof(float)); });
  nifti("srows 1e38", [](nifti_1_header &h) { h.srow_x[0] = h.srow_y[1] = h.srow_z[2] = 1e38f; }, "sform");
  nifti("srows 1e18", [](nifti_1_header &h) { h.srow_x[0] = h.srow_x[1] = h.srow_y[1] = h.srow_z[2] = 1e18f; });
  nifti("srows 3e38", [](nifti_1_header &h) { h.srow_x[0] = h.srow_x[1] = h.srow_y[1] = h.srow_z[2] = 3e38f; }, "sform");
  nifti("transform codes -1", [](nifti_1_header &h) { h.qform_code = h.sform_code = -1; });
  nifti("transform codes 999", [](nifti_1_header &h) { h.qform_code = h.sform_code = 999; });
  nifti("sizeof_hdr 0", [](nifti_1_header &h) { h.sizeof_hdr = 0; });
  nifti("magic xxx", [](nifti_1_header &h) { memcpy(h.magic, "xxx", 4); });
  nifti("data cut to 1000 bytes", nullptr, "truncated", &cut);
  nifti("data cut to 1000 bytes, gzip", nullptr, "truncated", &cut, true);
  nifti("without data", nullptr, "truncated", &none);
  return cases;
}

TEST_F(Plugin, VolumeHeadersAtExtremesNeverCrash) {
  Lib lib;
  ASSERT_NE(lib.entry, nullptr);
  const std::string dir = g_work + "/edited", out = dir + "/out/labels.nrrd";
  system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "/out'").c_str());
  int refused = 0, read = 0;
  for (const VolumeCase &v : volume_cases(dir)) {
    SCOPED_TRACE(v.what + " (" + v.path + ")");
    unlink(out.c_str());
    Call c;
    c.run(lib, {"--modelCard", card(), "--threads", "1", v.path, out});
    if (c.rc != 0) {
      ++refused;
      const std::string file = v.path.substr(v.path.rfind('/') + 1);
      EXPECT_NE(c.err.find(file), std::string::npos) << "the refusal names the file: " << c.err;
      EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << "one line: " << c.err;
      EXPECT_FALSE(exists(out));
      EXPECT_FALSE(v.must_read) << c.err;
      if (v.refusal) {
        EXPECT_NE(c.err.find(v.refusal), std::string::npos) << c.err;
      }
    } else {
      ++read;
      EXPECT_EQ(v.refusal, nullptr) << "read, but should be refused";
      Vol labels;
      EXPECT_TRUE(labels.read(out));
    }
  }
  // Both outcomes occur: the edits reach the readers, and plain files still load.
  EXPECT_GT(refused, 20);
  EXPECT_GT(read, 20);
  std::cout << "volume header edits: " << refused << " refused, " << read << " read\n";
}

// ------------------------------------------------------------- executable

TEST_F(Plugin, ExecutableSameLabelsAndProgressTags) {
  Lib lib;
  const std::string in = g_work + "/oblique/image.nrrd";
  Call c;
  c.run(lib, {"--modelCard", unet(), "--threads", "2", in, g_work + "/out/lib.nrrd"});
  ASSERT_EQ(c.rc, 0) << c.err;
  std::string out, err;
  ASSERT_EQ(run_exe({"--modelCard", unet(), "--threads", "2", in, g_work + "/out/exe.nrrd"}, out, err), 0) << err;
  EXPECT_NE(out.find("<filter-start>"), std::string::npos);
  EXPECT_NE(out.find("<filter-progress>1</filter-progress>"), std::string::npos);
  EXPECT_NE(out.find("<filter-end>"), std::string::npos);
  Vol a, b;
  ASSERT_TRUE(a.read(g_work + "/out/lib.nrrd"));
  ASSERT_TRUE(b.read(g_work + "/out/exe.nrrd"));
  expect_same_grid(a, b);
  ASSERT_EQ(a.n(), b.n());
  EXPECT_EQ(memcmp(a.img->GetBufferPointer(), b.img->GetBufferPointer(), a.n() * sizeof(float)), 0);
}

TEST_F(Plugin, ExecutableKilledLeavesNoOutput) {
  const std::string dir = g_work + "/killed";
  system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(plugin_exe(), plugin_exe(), "--modelCard", unet().c_str(), "--threads", "1",
          (g_work + "/axial/image.nrrd").c_str(), (dir + "/labels.nrrd").c_str(), (char *)nullptr);
    _exit(127);
  }
  close(fds[1]);
  // Kill once inference has started (as Slicer's Cancel does for executables).
  std::string seen;
  char buf[256];
  ssize_t n;
  while (seen.find("Segmenting") == std::string::npos && (n = read(fds[0], buf, sizeof buf)) > 0) seen.append(buf, n);
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(st));
  EXPECT_FALSE(exists(dir + "/labels.nrrd"));
}

}  // namespace
