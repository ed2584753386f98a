// MedinferSegment: the 3D Slicer CLI module, built twice from this file:
//   - the executable `MedinferSegment` (MEDINFER_SEGMENT_EXECUTABLE defined),
//     which Slicer discovers by running it with --xml and then runs as a
//     separate process (qSlicerCLIExecutableModuleFactory.cxx), and
//   - the library `libMedinferSegmentLib.so`, which Slicer dlopens and calls
//     in its own process (qSlicerCLILoadableModuleFactory.cxx): it resolves
//     the data symbol XMLModuleDescription (generated from the .xml at build
//     time) and the function ModuleEntryPoint(argc, argv).
//
// Library-mode contract, as vtkSlicerCLIModuleLogic.cxx (Base/Logic) runs a
// SharedObjectModule: argv[0] is the target "slicer:%p" (not a path); it
// passes "--processinformationaddress %p" pointing at its
// ModuleProcessInformation (SlicerExecutionModel
// ModuleDescriptionParser/ModuleProcessInformation.h), whose Progress,
// StageProgress and ProgressMessage the module fills before calling
// ProgressCallbackFunction(ProgressCallbackClientData), and whose Abort flag
// Slicer sets on Cancel; it redirects only std::cout/std::cerr (rdbuf) into
// the module's output/error text, so every message here goes through
// std::cerr.  The entry point runs many times in one process: no exit(), no
// globals, no getopt state, everything freed on every path.
//
// Executable-mode contract, as the same file runs a CommandLineModule: the
// arguments built from the XML (--longflag value, bare boolean flags,
// <index> positionals), progress as itkPluginFilterWatcher-style tags on
// stdout (<filter-progress>, <filter-stage-progress>, <filter-comment>),
// which the logic parses from the pipe.  Cancel kills the process, so every
// output is written under a temporary name and renamed into place.
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkMetaDataObject.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>

#include "medinfer/segmentation.h"
#include "nifti_check.h"

extern "C" {
// Generated from MedinferSegment.xml.in (GenerateModuleDescription.cmake).
extern char XMLModuleDescription[];
extern const size_t medinfer_xml_module_description_size;
__attribute__((visibility("default"))) int ModuleEntryPoint(int argc, char *argv[]);
}

namespace {

// Our copy of SlicerExecutionModel's ModuleProcessInformation (a C-layout
// struct inside extern "C" in ModuleProcessInformation.h).  The field order
// and types must match exactly: Slicer hands us its address.
struct ModuleProcessInformation {
  unsigned char Abort;                   // in: set by Slicer on Cancel
  float Progress;                        // out: overall, 0..1
  float StageProgress;                   // out: of the current stage, 0..1
  char ProgressMessage[1024];            // out
  void (*ProgressCallbackFunction)(void *);
  void *ProgressCallbackClientData;
  double ElapsedTime;
};
static_assert(offsetof(ModuleProcessInformation, Abort) == 0, "layout");
static_assert(offsetof(ModuleProcessInformation, Progress) == 4, "layout");
static_assert(offsetof(ModuleProcessInformation, StageProgress) == 8, "layout");
static_assert(offsetof(ModuleProcessInformation, ProgressMessage) == 12, "layout");
static_assert(offsetof(ModuleProcessInformation, ProgressCallbackFunction) == 1040, "layout");
static_assert(offsetof(ModuleProcessInformation, ProgressCallbackClientData) == 1048, "layout");
static_assert(offsetof(ModuleProcessInformation, ElapsedTime) == 1056, "layout");
static_assert(sizeof(ModuleProcessInformation) == 1064, "layout");

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CANCELLED = 3 };

constexpr const char *kName = "MedinferSegment";

struct Args {
  std::string input, output, model, model_card, seg_file, color_table, return_file, device = "cpu";
  int threads = 0, gpu_index = 0;
  bool fast_math = false, bf16 = false;
  bool allow_in_memory = false, xml = false, help = false, version = false;
  ModuleProcessInformation *info = nullptr;
};

void usage(std::ostream &os) {
  os << "usage: " << kName << " [options] INPUT_VOLUME OUTPUT_LABELMAP\n"
     << "  --model NAME                  installed model (see `medinfer models`)\n"
     << "  --modelCard FILE              a .card.json instead of --model\n"
     << "  --device cpu|cuda|auto        default cpu\n"
     << "  --gpuIndex N                  CUDA device for cuda and auto (default 0)\n"
     << "  --fastMath                    fast mode: Winograd 3x3 convolutions on a CPU\n"
     << "                                with AVX2 or AVX-512, TF32 on the GPU\n"
     << "  --bf16                        bf16 convolutions (fp32 sums) on a CPU with\n"
     << "                                AVX512-BF16; fp32 where it has none\n"
     << "  --threads N                   0 = every core (default)\n"
     << "  --outputSegmentationFile F    also write F (.seg.nrrd)\n"
     << "  --outputColorTable F          also write a Slicer color table (.ctbl)\n"
     << "  --returnparameterfile F       write segment volumes there (Slicer)\n"
     << "  --processinformationaddress A progress/abort structure (Slicer, library mode)\n"
     << "  --xml                         print the module description\n"
     << "  --version, --help\n"
     << "INPUT_VOLUME: a 3D .nrrd/.nhdr/.nii/.nii.gz volume; OUTPUT_LABELMAP: .nrrd\n";
}

// Own parser (no getopt: its optind/optarg globals would carry state from one
// call to the next in library mode).  Accepts "--flag value" and
// "--flag=value" as Slicer's generated parsers (TCLAP) do.
bool parse_args(int argc, char *argv[], Args &a, std::string &err) {
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    if (!argv[i]) break;
    std::string s = argv[i], val;
    bool has_eq = false;
    if (s.size() > 2 && s[0] == '-' && s[1] == '-') {
      const size_t eq = s.find('=');
      if (eq != std::string::npos) {
        val = s.substr(eq + 1);
        s.resize(eq);
        has_eq = true;
      }
    } else if (s.size() > 1 && s[0] == '-' && !isdigit((unsigned char)s[1])) {
      err = "unknown option " + s;
      return false;
    } else {
      pos.push_back(s);
      continue;
    }
    auto value = [&](std::string &out) {
      if (has_eq) { out = val; return true; }
      if (i + 1 >= argc || !argv[i + 1]) { err = s + " needs a value"; return false; }
      out = argv[++i];
      return true;
    };
    std::string v;
    // An integer option in 0..hi (the message names the option and the value).
    auto integer = [&](const std::string &opt, long hi, int &out) {
      if (!value(v)) return false;
      char *end = nullptr;
      errno = 0;
      const long t = strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || t < 0 || t > hi) {
        err = opt + " must be an integer 0.." + std::to_string(hi) + ", not '" + v + "'";
        return false;
      }
      out = (int)t;
      return true;
    };
    // A switch: set, taking no value (TCLAP's SwitchArg does not match
    // "--fastMath=false"; ignoring the value would turn the mode on).
    bool ignored = false;
    auto on = [&](bool &out) {
      if (has_eq) { err = s + " takes no value"; return false; }
      out = true;
      return true;
    };
    if (s == "--xml") { if (!on(a.xml)) return false; }
    else if (s == "--help") { if (!on(a.help)) return false; }
    else if (s == "--version") { if (!on(a.version)) return false; }
    else if (s == "--echo") { if (!on(ignored)) return false; }  // GenerateCLP's --echo: nothing to echo
    else if (s == "--AllowInMemoryTransfer") { if (!on(a.allow_in_memory)) return false; }
    else if (s == "--model") { if (!value(a.model)) return false; }
    else if (s == "--modelCard") { if (!value(a.model_card)) return false; }
    else if (s == "--device") {
      if (!value(a.device)) return false;
      if (a.device != "cpu" && a.device != "cuda" && a.device != "auto") {
        err = "--device must be cpu, cuda or auto, not '" + a.device + "'";
        return false;
      }
    } else if (s == "--fastMath") {
      if (!on(a.fast_math)) return false;
    } else if (s == "--bf16") {
      if (!on(a.bf16)) return false;
    } else if (s == "--gpuIndex") {
      if (!integer(s, 63, a.gpu_index)) return false;
    } else if (s == "--threads") {
      if (!integer(s, 1024, a.threads)) return false;
    } else if (s == "--outputSegmentationFile") { if (!value(a.seg_file)) return false; }
    else if (s == "--outputColorTable") { if (!value(a.color_table)) return false; }
    else if (s == "--returnparameterfile") { if (!value(a.return_file)) return false; }
    else if (s == "--processinformationaddress") {
      if (!value(v)) return false;
      // Slicer prints it with sprintf("%p"); read it back the same way.
      void *p = nullptr;
      if (sscanf(v.c_str(), "%p", &p) != 1 || !p) { err = "bad --processinformationaddress '" + v + "'"; return false; }
      a.info = static_cast<ModuleProcessInformation *>(p);
    } else {
      err = "unknown option " + s;
      return false;
    }
  }
  if (a.xml || a.help || a.version) return true;
  if (pos.size() > 2) { err = "unexpected argument '" + pos[2] + "'"; return false; }
  if (pos.size() < 1) { err = "missing the input volume (argument 1)"; return false; }
  if (pos.size() < 2) { err = "missing the output label map (argument 2)"; return false; }
  a.input = pos[0];
  a.output = pos[1];
  if (a.model.empty() && a.model_card.empty()) { err = "no model: give --model NAME or --modelCard FILE"; return false; }
  return true;
}

// Progress to whichever side is listening.  Stage weights: reading 5 %, model
// 5 %, pipeline 85 %, writing 5 %.
struct Reporter {
  ModuleProcessInformation *info;
  bool tags;  // executable: XML tags on stdout
  double stage_lo = 0, stage_hi = 0;
  time_t start = time(nullptr);

  bool aborted() const { return info && info->Abort; }
  void stage(double lo, double hi, const char *msg) {
    stage_lo = lo, stage_hi = hi;
    report(0, msg);
  }
  void report(double f, const char *msg) {
    f = std::min(1.0, std::max(0.0, f));
    const double overall = stage_lo + (stage_hi - stage_lo) * f;
    if (info) {
      info->Progress = (float)overall;
      info->StageProgress = (float)f;
      if (msg) snprintf(info->ProgressMessage, sizeof info->ProgressMessage, "%s", msg);
      info->ElapsedTime = difftime(time(nullptr), start);
      if (info->ProgressCallbackFunction) info->ProgressCallbackFunction(info->ProgressCallbackClientData);
    }
    if (tags) {
      // The logic keeps the last complete tag of each kind in the stdout
      // buffer; flush so it sees them while we run.
      if (msg) std::cout << "<filter-comment>" << msg << "</filter-comment>\n";
      std::cout << "<filter-progress>" << overall << "</filter-progress>\n"
                << "<filter-stage-progress>" << f << "</filter-stage-progress>" << std::endl;
    }
  }
};

int on_pipeline_progress(void *user, double fraction, const char *message) {
  Reporter *r = static_cast<Reporter *>(user);
  r->report(fraction, message);
  return r->aborted() ? 1 : 0;  // nonzero: the pipeline stops with MI_ERR_CANCELLED
}

std::string status_text(mi_status *st) {
  std::string s = mi_status_message(st);
  mi_status_free(st);
  return s;
}

// ------------------------------------------------------------ volume IO

using FloatImage = itk::Image<float, 3>;
using LabelImage = itk::Image<unsigned char, 3>;

bool ends_with(const std::string &s, const char *suffix) {
  const size_t n = strlen(suffix);
  if (s.size() < n) return false;
  return strcasecmp(s.c_str() + s.size() - n, suffix) == 0;
}

// Folder of this module file: the library in Slicer's process (dladdr; the
// process is Slicer, so /proc/self/exe would name Slicer), the executable
// otherwise.
std::string module_dir() {
  char buf[PATH_MAX] = "";
#ifdef MEDINFER_SEGMENT_EXECUTABLE
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
#else
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&ModuleEntryPoint), &info) || !info.dli_fname) return "";
  if (!realpath(info.dli_fname, buf)) return "";
#endif
  std::string s = buf;
  const size_t slash = s.rfind('/');
  return slash == std::string::npos ? "." : s.substr(0, slash);
}

// Installed model by name.  Cards packaged with the module (the extension
// puts them in <cli-modules>/medinfer-models/<model>/<name>.card.json, or a
// standalone install in <prefix>/share/medinfer/models) come first, then
// medinfer's own search ($MEDINFER_MODEL_PATH, the installation of the
// `medinfer` command, the source tree).
mi_status *find_card(const std::string &name_or_path, mi_card **out) {
  const bool is_name = name_or_path.find('/') == std::string::npos && !ends_with(name_or_path, ".json");
  const std::string dir = is_name ? module_dir() : "";
  if (!dir.empty()) {
    for (const std::string &root : {dir + "/medinfer-models", dir + "/../../../share/medinfer/models"}) {
      DIR *d = opendir(root.c_str());
      if (!d) continue;
      std::string found;
      while (struct dirent *e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        const std::string cand = root + "/" + e->d_name + "/" + name_or_path + ".card.json";
        if (access(cand.c_str(), R_OK) == 0) { found = cand; break; }
      }
      closedir(d);
      if (!found.empty()) {
        mi_status *st = mi_card_load(found.c_str(), out);
        if (st || !strcmp(mi_card_name(*out), name_or_path.c_str())) return st;
        mi_card_free(*out);  // file name and card name disagree: keep looking
        *out = nullptr;
      }
    }
  }
  return mi_card_find(name_or_path.c_str(), out);
}

// ITK's message on one line: NRRD's come as several (teem's error stack, a
// line per function), and the module's every error is one line of stderr.
std::string one_line(const char *text) {
  std::string out;
  std::istringstream in(text ? text : "");
  for (std::string line; std::getline(in, line);) {
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos) continue;
    if (!out.empty()) out += out.back() == ':' ? " " : "; ";
    out += line.substr(b, e - b + 1);
  }
  return out;
}

// Pick the ImageIO explicitly rather than through ITK's factory registry:
// the registry is process-wide state, and Slicer's own ITK factories live in
// the same process in library mode.
itk::ImageIOBase::Pointer io_for_reading(const std::string &path) {
  itk::ImageIOBase::Pointer ios[] = {itk::NrrdImageIO::New().GetPointer(), itk::NiftiImageIO::New().GetPointer()};
  for (auto &io : ios)
    if (io->CanReadFile(path.c_str())) return io;
  return nullptr;
}

bool read_volume(const std::string &path, std::vector<float> &voxels, mi_geometry &g, std::string &err) {
  if (path.rfind("slicer:", 0) == 0) {
    err = "input '" + path + "' is an in-memory MRML node reference; this module reads volumes from files "
          "(AllowInMemoryTransfer must be false)";
    return false;
  }
  struct stat sb;
  if (stat(path.c_str(), &sb) != 0) { err = "cannot read input volume " + path + ": " + strerror(errno); return false; }
  if (!S_ISREG(sb.st_mode)) { err = "input volume " + path + " is not a file"; return false; }
  itk::ImageIOBase::Pointer io = io_for_reading(path);
  if (!io) { err = "input volume " + path + " is not a NRRD or NIfTI file"; return false; }
  const bool nifti = dynamic_cast<itk::NiftiImageIO *>(io.GetPointer()) != nullptr;
  if (nifti && !nifti_check_header(path, err)) return false;
  try {
    io->SetFileName(path);
    io->ReadImageInformation();
    const unsigned dims = io->GetNumberOfDimensions();
    if (dims < 3 || (dims == 3 && io->GetDimensions(2) < 2)) {
      err = "input volume " + path + " is 2D; a 3D volume is needed";
      return false;
    }
    if (dims > 3) {
      for (unsigned d = 3; d < dims; ++d)
        if (io->GetDimensions(d) > 1) { err = "input volume " + path + " has more than 3 dimensions"; return false; }
    }
    if (io->GetNumberOfComponents() != 1) {
      err = "input volume " + path + " has " + std::to_string(io->GetNumberOfComponents()) +
            " components per voxel; a scalar volume is needed";
      return false;
    }
    // Refused before ITK allocates it: a header claiming 65536^3 voxels made
    // it ask for a terabyte (a sanitizer build aborts there rather than
    // throw).  2^31 voxels are 8 GB as floats, held twice here, and the
    // model's grid has the same limit (mi_grid_for).
    const double claimed = (double)io->GetDimensions(0) * io->GetDimensions(1) * io->GetDimensions(2);
    if (claimed > 2147483648.0) {
      err = "input volume " + path + " has " + std::to_string(io->GetDimensions(0)) + " x " +
            std::to_string(io->GetDimensions(1)) + " x " + std::to_string(io->GetDimensions(2)) +
            " voxels: more than 2^31 (8 GB as floats)";
      return false;
    }
    if (nifti && !nifti_check_data(path, err)) return false;
    auto reader = itk::ImageFileReader<FloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path);
    reader->Update();
    FloatImage *img = reader->GetOutput();
    const auto size = img->GetLargestPossibleRegion().GetSize();
    // ITK's NRRD and NIfTI readers give LPS physical space, as mi_geometry.
    for (int d = 0; d < 3; ++d) {
      g.size[d] = (int64_t)size[d];
      g.origin[d] = img->GetOrigin()[d];
      g.spacing[d] = img->GetSpacing()[d];
      for (int c = 0; c < 3; ++c) g.direction[3 * d + c] = img->GetDirection()[d][c];
    }
    const size_t n = (size_t)size[0] * size[1] * size[2];
    voxels.assign(img->GetBufferPointer(), img->GetBufferPointer() + n);
    for (float v : voxels)
      if (!std::isfinite(v)) { err = "input volume " + path + " has NaN or infinite voxels"; return false; }
  } catch (const itk::ExceptionObject &e) {
    err = "cannot read input volume " + path + ": " + one_line(e.GetDescription());
    return false;
  } catch (const std::bad_alloc &) {
    err = "out of memory reading " + path;
    return false;
  }
  return true;
}

// The folder a path names its file in ("." for a bare name).
std::string folder_of(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// Unique temporary name beside `path` (same filesystem, so rename is atomic),
// keeping the extension; the file is created to reserve the name, with mode
// 0666 less the umask, as ITK's writers and the DICOM outputs make theirs
// (mkstemps made every output 0600, unreadable to a colleague); a name
// taken by another host's process sharing the folder is passed over.
bool temp_beside(const std::string &path, std::string &tmp, std::string &err) {
  static std::atomic<unsigned> counter{0};
  const std::string dir = folder_of(path), base = path.substr(path.rfind('/') + 1);  // npos + 1: the whole name
  const size_t dot = base.find('.');
  const std::string ext = dot == std::string::npos ? "" : base.substr(dot);
  for (int attempt = 0; attempt < 100; ++attempt) {
    char tag[64];
    snprintf(tag, sizeof tag, ".tmp-%ld-%u", (long)getpid(), counter++);
    tmp = dir + "/." + base + tag + ext;
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    if (errno != EEXIST) break;
  }
  err = "cannot write " + path + ": " + strerror(errno);
  return false;
}

bool commit(const std::string &tmp, const std::string &path, std::string &err) {
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    err = "cannot write " + path + ": " + strerror(errno);
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Terminology as Slicer serialises it into a segment's "TerminologyEntry" tag
// (vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry): context ~
// category ~ type ~ type modifier ~ region context ~ region ~ region
// modifier, each code scheme^value^meaning.
std::string terminology(const mi_card_label *l) {
  auto code = [](const char *s, const char *v, const char *m) {
    return std::string(s ? s : "") + "^" + (v ? v : "") + "^" + (m ? m : "");
  };
  return std::string("Segmentation category and type - 3D Slicer General Anatomy list~") +
         code(l->category_scheme, l->category_value, l->category_meaning) + "~" +
         code(l->type_scheme, l->type_value, l->type_meaning) + "~^^~Anatomic codes - DICOM master list~^^~^^";
}

// The label map, with the header fields vtkMRMLSegmentationStorageNode
// (Libs/MRML/Core) writes into .seg.nrrd and reads back: Segmentation_* and
// Segment<i>_{ID,Name,Color,NameAutoGenerated,ColorAutoGenerated,Extent,
// Tags,LabelValue,Layer}.  One layer (the label map itself), label values
// from the card.  A labelmap volume node reading the same file ignores them.
void add_segment_metadata(LabelImage *img, const mi_card *card, const mi_segmentation *seg) {
  itk::MetaDataDictionary &d = img->GetMetaDataDictionary();
  const mi_geometry *g = mi_segmentation_geometry(seg);
  const uint8_t *lab = mi_segmentation_labels(seg);
  const size_t nl = mi_card_label_count(card);
  // Extent of every label value (inclusive voxel bounds).
  std::vector<std::array<int64_t, 6>> ext(256, {INT64_MAX, -1, INT64_MAX, -1, INT64_MAX, -1});
  size_t idx = 0;
  for (int64_t k = 0; k < g->size[2]; ++k)
    for (int64_t j = 0; j < g->size[1]; ++j)
      for (int64_t i = 0; i < g->size[0]; ++i, ++idx) {
        auto &e = ext[lab[idx]];
        e[0] = std::min(e[0], i), e[1] = std::max(e[1], i);
        e[2] = std::min(e[2], j), e[3] = std::max(e[3], j);
        e[4] = std::min(e[4], k), e[5] = std::max(e[5], k);
      }
  auto put = [&d](const std::string &k, const std::string &v) { itk::EncapsulateMetaData<std::string>(d, k, v); };
  put("Segmentation_MasterRepresentation", "Binary labelmap");
  put("Segmentation_ContainedRepresentationNames", "Binary labelmap|");
  put("Segmentation_ReferenceImageExtentOffset", "0 0 0");
  for (size_t s = 0; s < nl; ++s) {
    const mi_card_label *l = mi_card_label_at(card, s);
    const std::string p = "Segment" + std::to_string(s) + "_";
    std::ostringstream color, extent;
    color << l->rgb[0] / 255.0 << " " << l->rgb[1] / 255.0 << " " << l->rgb[2] / 255.0;
    const auto &e = ext[(uint8_t)l->value];
    if (e[1] < 0) extent << "0 -1 0 -1 0 -1";  // empty segment, as Slicer writes it
    else extent << e[0] << " " << e[1] << " " << e[2] << " " << e[3] << " " << e[4] << " " << e[5];
    std::string id = l->name;
    std::replace(id.begin(), id.end(), ' ', '_');
    put(p + "ID", id);
    put(p + "Name", l->name);
    put(p + "Color", color.str());
    put(p + "NameAutoGenerated", "0");
    put(p + "ColorAutoGenerated", "0");
    put(p + "Extent", extent.str());
    put(p + "Tags", "TerminologyEntry:" + terminology(l) + "|");
    put(p + "LabelValue", std::to_string(l->value));
    put(p + "Layer", "0");
  }
}

bool write_labels(const std::string &path, const mi_card *card, const mi_segmentation *seg, std::string &err) {
  const mi_geometry *g = mi_segmentation_geometry(seg);
  std::string tmp;
  if (!temp_beside(path, tmp, err)) return false;
  try {
    auto img = LabelImage::New();
    LabelImage::RegionType region;
    LabelImage::SpacingType spacing;
    LabelImage::PointType origin;
    LabelImage::DirectionType dir;
    for (int d = 0; d < 3; ++d) {
      region.SetSize(d, (itk::SizeValueType)g->size[d]);
      spacing[d] = g->spacing[d];
      origin[d] = g->origin[d];
      for (int c = 0; c < 3; ++c) dir[d][c] = g->direction[3 * d + c];
    }
    img->SetRegions(region);
    img->SetSpacing(spacing);
    img->SetOrigin(origin);
    img->SetDirection(dir);
    img->Allocate();
    const size_t n = (size_t)(g->size[0] * g->size[1] * g->size[2]);
    memcpy(img->GetBufferPointer(), mi_segmentation_labels(seg), n);
    add_segment_metadata(img, card, seg);
    auto writer = itk::ImageFileWriter<LabelImage>::New();
    writer->SetImageIO(itk::NrrdImageIO::New());  // NRRD whatever the temporary name
    writer->SetFileName(tmp);
    writer->SetInput(img);
    writer->UseCompressionOn();
    writer->Update();
  } catch (const itk::ExceptionObject &e) {
    unlink(tmp.c_str());
    err = "cannot write " + path + ": " + one_line(e.GetDescription());
    return false;
  } catch (const std::bad_alloc &) {
    unlink(tmp.c_str());
    err = "out of memory writing " + path;
    return false;
  }
  return commit(tmp, path, err);
}

// Slicer's .ctbl (vtkMRMLColorTableStorageNode::WriteDataInternal): comment
// header, then "value name r g b a" with 0..255 components and spaces in
// names replaced by '_'.
bool write_color_table(const std::string &path, const mi_card *card, std::string &err) {
  std::string tmp;
  if (!temp_beside(path, tmp, err)) return false;
  {
    std::ofstream f(tmp);
    const size_t nl = mi_card_label_count(card);
    int max_value = 0;
    for (size_t s = 0; s < nl; ++s) max_value = std::max(max_value, mi_card_label_at(card, s)->value);
    f << "# Color table file " << path << "\n# " << max_value + 1 << " values\n0 Background 0 0 0 0\n";
    for (size_t s = 0; s < nl; ++s) {
      const mi_card_label *l = mi_card_label_at(card, s);
      std::string name = l->name;
      std::replace(name.begin(), name.end(), ' ', '_');
      f << l->value << " " << (name.empty() ? "_" : name) << " " << (int)l->rgb[0] << " " << (int)l->rgb[1] << " "
        << (int)l->rgb[2] << " 255\n";
    }
    f.close();
    if (!f) {
      unlink(tmp.c_str());
      err = "cannot write " + path;
      return false;
    }
  }
  return commit(tmp, path, err);
}

// Return parameters as ModuleDescription::ReadParameterFile reads them:
// one "name = value" per line.
bool write_return_parameters(const std::string &path, const mi_card *card, const mi_segmentation *seg,
                             std::string &err) {
  std::ostringstream vols;
  for (size_t s = 0; s < mi_card_label_count(card); ++s) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.1f", mi_segmentation_volume_ml(seg, s));
    vols << (s ? ", " : "") << mi_card_label_at(card, s)->name << ": " << buf << " mL";
  }
  std::ofstream f(path);
  f << "segmentVolumes = " << vols.str() << "\n";
  f.close();
  if (!f) { err = "cannot write the return parameter file " + path; return false; }
  return true;
}

bool writable_dir_of(const std::string &path, std::string &err) {
  const std::string dir = folder_of(path);
  if (access(dir.c_str(), W_OK) != 0) {
    err = "cannot write " + path + ": folder " + dir + ": " + strerror(errno);
    return false;
  }
  return true;
}

// Whether a and b name one file: one existing file (hard or symbolic links
// followed), or the same path once resolved (as dicom's check_output).
bool same_file(const std::string &a, const std::string &b) {
  namespace fs = std::filesystem;
  std::error_code ea, eb;
  if (fs::equivalent(a, b, ea)) return true;
  const fs::path ca = fs::weakly_canonical(fs::absolute(a), ea), cb = fs::weakly_canonical(fs::absolute(b), eb);
  return !ea && !eb && ca == cb;
}

// Outputs must not replace the input (the output's rename would, without a
// word) nor each other.
bool outputs_distinct(const Args &a, std::string &err) {
  const std::string *outs[] = {&a.output, &a.seg_file, &a.color_table, &a.return_file};
  for (size_t i = 0; i < 4; ++i) {
    if (outs[i]->empty()) continue;
    if (same_file(*outs[i], a.input)) {
      err = "cannot write " + *outs[i] + ": it is the input volume (refusing to overwrite it)";
      return false;
    }
    for (size_t j = 0; j < i; ++j)
      if (!outs[j]->empty() && same_file(*outs[i], *outs[j])) {
        err = "cannot write " + *outs[i] + ": it is named for two outputs";
        return false;
      }
  }
  return true;
}

struct Outputs {  // removes whatever was not committed (cancel or error)
  std::vector<std::string> written;
  bool keep = false;
  ~Outputs() {
    if (!keep)
      for (auto &p : written) unlink(p.c_str());
  }
};

int run(const Args &a, Reporter &rep) {
  std::string err;
  // Fail on unwritable outputs before minutes of inference.
  for (const std::string *p : {&a.output, &a.seg_file, &a.color_table})
    if (!p->empty() && !writable_dir_of(*p, err)) {
      std::cerr << kName << ": " << err << std::endl;
      return EXIT_FAIL;
    }
  if (!outputs_distinct(a, err)) {
    std::cerr << kName << ": " << err << std::endl;
    return EXIT_FAIL;
  }

  rep.stage(0.0, 0.05, "Reading the input volume");
  std::vector<float> voxels;
  mi_geometry g;
  memset(&g, 0, sizeof g);
  if (!read_volume(a.input, voxels, g, err)) {
    std::cerr << kName << ": " << err << std::endl;
    return EXIT_FAIL;
  }
  if (rep.aborted()) return EXIT_CANCELLED;

  rep.stage(0.05, 0.10, "Loading the model");
  mi_card *card = nullptr;
  const std::string &which = a.model_card.empty() ? a.model : a.model_card;
  if (mi_status *st = find_card(which, &card)) {
    std::cerr << kName << ": model " << which << ": " << status_text(st) << std::endl;
    return EXIT_FAIL;
  }
  mi_segmenter_options o;
  mi_segmenter_options_init(&o);
  o.threads = a.threads;
  o.device = a.device == "cuda" ? MI_SEG_DEVICE_CUDA : a.device == "auto" ? MI_SEG_DEVICE_AUTO : MI_SEG_DEVICE_CPU;
  o.device_index = a.gpu_index;
  o.fast_math = a.fast_math ? 1 : 0;
  o.bf16 = a.bf16 ? 1 : 0;
  o.progress = on_pipeline_progress;
  o.progress_user = &rep;
  mi_segmenter *sg = nullptr;
  if (mi_status *st = mi_segmenter_create(card, &o, &sg)) {
    std::cerr << kName << ": model " << mi_card_name(card) << ": " << status_text(st) << std::endl;
    mi_card_free(card);
    return EXIT_FAIL;
  }
  // A mode ticked that this CPU lacks runs FP32; the device line says so and why.
  std::cout << kName << ": device: " << mi_segmenter_device(sg) << std::endl;
  int rc = EXIT_OK;
  mi_segmentation *seg = nullptr;
  if (rep.aborted()) {
    rc = EXIT_CANCELLED;
  } else {
    rep.stage(0.10, 0.95, "Segmenting");
    // The voxels go once resampled onto the model's grid: the rest of the run needs only g.
    auto release = [](void *v) { std::vector<float>().swap(*static_cast<std::vector<float> *>(v)); };
    if (mi_status *st = mi_segmenter_run_releasing(sg, &g, voxels.data(), release, &voxels, &seg)) {
      const bool cancelled = mi_status_code(st) == MI_ERR_CANCELLED;
      const std::string msg = status_text(st);
      if (cancelled) rc = EXIT_CANCELLED;
      else {
        std::cerr << kName << ": " << a.input << ": " << msg << std::endl;
        rc = EXIT_FAIL;
      }
    }
  }
  mi_segmenter_free(sg);
  std::vector<float>().swap(voxels);
  if (rc == EXIT_OK && rep.aborted()) rc = EXIT_CANCELLED;
  if (rc == EXIT_OK) {
    rep.stage(0.95, 1.0, "Writing the segmentation");
    Outputs out;
    bool ok = write_labels(a.output, card, seg, err);
    if (ok) out.written.push_back(a.output);
    if (ok && !a.seg_file.empty()) {
      ok = write_labels(a.seg_file, card, seg, err);
      if (ok) out.written.push_back(a.seg_file);
    }
    if (ok && !a.color_table.empty()) {
      ok = write_color_table(a.color_table, card, err);
      if (ok) out.written.push_back(a.color_table);
    }
    if (ok && !a.return_file.empty()) ok = write_return_parameters(a.return_file, card, seg, err);
    if (!ok) {
      std::cerr << kName << ": " << err << std::endl;
      rc = EXIT_FAIL;
    } else if (rep.aborted()) {
      rc = EXIT_CANCELLED;  // Outputs removes what was written
    } else {
      out.keep = true;
      rep.report(1.0, "Done");
    }
  }
  if (rc == EXIT_CANCELLED) std::cerr << kName << ": cancelled; no output written" << std::endl;
  mi_segmentation_free(seg);
  mi_card_free(card);
  return rc;
}

}  // namespace

extern "C" int ModuleEntryPoint(int argc, char *argv[]) {
  try {
    Args a;
    std::string err;
    if (!parse_args(argc, argv, a, err)) {
      std::cerr << kName << ": " << err << " (--help for usage)" << std::endl;
      return EXIT_USAGE;
    }
    if (a.xml) {
      // Byte for byte the generated description (Slicer runs executables with
      // --xml and treats anything on stderr as a problem).
      std::cout.write(XMLModuleDescription, (std::streamsize)medinfer_xml_module_description_size);
      std::cout.flush();
      return EXIT_OK;
    }
    if (a.help) { usage(std::cout); return EXIT_OK; }
    if (a.version) { std::cout << kName << " " << MEDINFER_VERSION << std::endl; return EXIT_OK; }
    if (a.allow_in_memory)
      std::cerr << kName << ": note: AllowInMemoryTransfer is ignored; volumes are read from files" << std::endl;
#ifdef MEDINFER_SEGMENT_EXECUTABLE
    const bool tags = a.info == nullptr;
#else
    const bool tags = false;  // library: progress goes through the struct
#endif
    Reporter rep{a.info, tags};
    if (tags) std::cout << "<filter-start>\n<filter-name>" << kName << "</filter-name>\n<filter-comment>Medinfer Segment"
                        << "</filter-comment>\n</filter-start>" << std::endl;
    const int rc = run(a, rep);
    if (tags)
      std::cout << "<filter-end>\n<filter-name>" << kName << "</filter-name>\n<filter-time>"
                << difftime(time(nullptr), rep.start) << "</filter-time>\n</filter-end>" << std::endl;
    return rc;
  } catch (const std::bad_alloc &) {
    std::cerr << kName << ": out of memory" << std::endl;
  } catch (const std::exception &e) {
    std::cerr << kName << ": " << e.what() << std::endl;
  } catch (...) {
    std::cerr << kName << ": unexpected error" << std::endl;
  }
  return EXIT_FAIL;
}

#ifdef MEDINFER_SEGMENT_EXECUTABLE
int main(int argc, char *argv[]) { return ModuleEntryPoint(argc, argv); }
#endif
