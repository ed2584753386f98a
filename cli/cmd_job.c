/* medinfer segment / medinfer detect: run a model over every applicable
 * series of a study (or a folder of studies): one DICOM SEG per series, or
 * one folder of findings (SR, markups, review pages) per series, with
 * report.json beside them and progress on stderr. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#ifdef MEDINFER_HAVE_SEGMENTATION
#include "medinfer/segmentation.h"
#endif

enum { MI_EXIT_PARTIAL = 4, MI_EXIT_INTERRUPTED = 130 };

/* The device options of segment and detect (one text for both). */
#define DEVICE_OPTIONS_HELP \
  "  --device D          where the network runs: cpu (default), cuda, cuda:N (GPU\n" \
  "                      N), or auto (the GPU when one is usable, else the CPU,\n" \
  "                      saying why)\n" \
  "  --fast              fast mode (default off): on a CPU with AVX2 or AVX-512,\n" \
  "                      Winograd 3x3 convolutions (about 1e-5 relative\n" \
  "                      difference); on a GPU, TF32 matrix products (about\n" \
  "                      1e-2)\n" \
  "  --bf16              on a CPU with AVX512-BF16, bf16 convolutions with fp32\n" \
  "                      accumulation, or fast mode's Winograd where it is faster\n" \
  "                      (default off; FP32 where not available)\n"

static void segment_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer segment --model NAME_OR_CARD --input DIR_OR_FILE... --output DIR [options]\n"
          "\n"
          "Segment every series of the input the model applies to (modality, body part,\n"
          "minimum size from its card) and write one DICOM SEG per series,\n"
          "DIR/<SeriesInstanceUID>.seg.dcm, and DIR/report.json (per series: ok, skipped\n"
          "or error with the reason, label volumes in mL, seconds per stage).  Files are\n"
          "written to a temporary name and renamed, so an interrupted run leaves no\n"
          "partial output; rerunning completes only what is missing.\n"
          "\n"
          "  --model NAME|CARD   installed model name (see 'medinfer models') or a\n"
          "                      .card.json file\n"
          "  --input PATH        a folder (searched recursively: a study or a folder of\n"
          "                      studies), a DICOMDIR, or DICOM files; repeatable, and\n"
          "                      further PATHs may follow the options\n"
          "  --output DIR        where SEGs and report.json go (created; not inside an input)\n"
          "  --series UID        only this SeriesInstanceUID\n"
          "  --threads N         CPU threads (default: all cores)\n"
          DEVICE_OPTIONS_HELP
          "  --fractional        FRACTIONAL PROBABILITY SEG (per-label probabilities,\n"
          "                      one float per voxel and label in memory) instead of BINARY\n"
          "  --force             rewrite SEGs that already exist (default: skip them)\n"
          "  -v, --verbose       every progress message\n"
          "  --help              this text\n"
          "\n"
          "Exit status: 0 every applicable series segmented (or already done), 1 nothing\n"
          "succeeded (or nothing to segment, or the model could not be loaded), 2 usage,\n"
          "3 built without the segmentation module, 4 partial: some series failed (see\n"
          "report.json), 130 interrupted.\n");
}

static void detect_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer detect --model NAME_OR_CARD --input DIR_OR_FILE... --output DIR [options]\n"
          "\n"
          "Run a detector over every series of the input it applies to and write, per\n"
          "series, the folder DIR/<SeriesInstanceUID>.findings/ with findings.json,\n"
          "findings.csv, findings.mrk.json (Slicer ROI markups), findings.sr.dcm (DICOM\n"
          "Comprehensive 3D SR, TID 1500) and review/index.html with a picture per\n"
          "finding; and DIR/report.json.  Each folder is assembled under a temporary name\n"
          "and renamed, so an interrupted run leaves no partial output; rerunning\n"
          "completes only what is missing.\n"
          "\n"
          "  --model NAME|CARD   installed detector (see 'medinfer models') or a .card.json\n"
          "  --input PATH        a folder (searched recursively), a DICOMDIR, or DICOM\n"
          "                      files; repeatable, and further PATHs may follow the options\n"
          "  --output DIR        where the folders and report.json go (not inside an input)\n"
          "  --series UID        only this SeriesInstanceUID\n"
          "  --threads N         CPU threads (default: all cores)\n"
          DEVICE_OPTIONS_HELP
          "  --force             rewrite results that already exist (default: skip them)\n"
          "  -v, --verbose       every progress message\n"
          "  --help              this text\n"
          "\n"
          "Exit status: 0 every applicable series done (or already done), 1 nothing\n"
          "succeeded (or nothing applicable, or the model could not be loaded), 2 usage,\n"
          "3 built without the segmentation module, 4 partial: some series failed (see\n"
          "report.json), 130 interrupted.\n");
}

#ifdef MEDINFER_HAVE_SEGMENTATION
static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

typedef struct ui {
  int tty, verbose;
  char last_stage[32];
  size_t last_index;
  int bar_shown;
} ui;

/* "inference: patch 3/8" -> "inference" */
static void stage_of(const char *msg, char *out, size_t n) {
  size_t k = strcspn(msg ? msg : "", ":");
  if (k >= n) k = n - 1;
  memcpy(out, msg ? msg : "", k);
  out[k] = 0;
}

static int on_event(void *user, const mi_seg_job_event *ev) {
  ui *u = user;
  const char *desc = ev->description && *ev->description ? ev->description : ev->series_uid;
  if (ev->status) {
    if (u->tty && u->bar_shown) fputs("\r\033[K", stderr);
    u->bar_shown = 0;
    fprintf(stderr, "[%zu/%zu] %-28.28s %s%s%s\n", ev->index + 1, ev->count, desc, ev->status,
            ev->reason ? ": " : "", ev->reason ? ev->reason : "");
    u->last_stage[0] = 0;
    return interrupted;
  }
  char stage[32];
  stage_of(ev->message, stage, sizeof stage);
  if (!strcmp(stage, "device")) { /* always its own line: --device auto may have fallen back */
    if (u->tty && u->bar_shown) fputs("\r\033[K", stderr);
    u->bar_shown = 0;
    fprintf(stderr, "medinfer: %s\n", ev->message);
    snprintf(u->last_stage, sizeof u->last_stage, "%s", stage);
    u->last_index = ev->index;
    fflush(stderr);
    return interrupted;
  }
  if (u->tty) {
    char bar[31];
    int fill = (int)(ev->fraction * 30 + 0.5);
    for (int i = 0; i < 30; ++i) bar[i] = i < fill ? '#' : '-';
    bar[30] = 0;
    fprintf(stderr, "\r\033[K[%zu/%zu] %-28.28s [%s] %3d%% %s", ev->index + 1, ev->count, desc, bar,
            (int)(ev->fraction * 100 + 0.5), ev->message ? ev->message : "");
    u->bar_shown = 1;
  } else if (u->verbose || strcmp(stage, u->last_stage) || u->last_index != ev->index) {
    /* Plain lines for logs: one per stage (every message with -v). */
    fprintf(stderr, "[%zu/%zu] %s %3d%% %s\n", ev->index + 1, ev->count, desc, (int)(ev->fraction * 100 + 0.5),
            ev->message ? ev->message : "");
  }
  snprintf(u->last_stage, sizeof u->last_stage, "%s", stage);
  u->last_index = ev->index;
  fflush(stderr);
  return interrupted;
}
#endif

/* --device cpu | cuda | cuda:N | auto (values as MI_SEG_DEVICE_*). */
enum { MI_CLI_DEVICE_CPU = 0, MI_CLI_DEVICE_CUDA = 1, MI_CLI_DEVICE_AUTO = 2 };
#ifdef MEDINFER_HAVE_SEGMENTATION
_Static_assert((int)MI_CLI_DEVICE_CUDA == (int)MI_SEG_DEVICE_CUDA && (int)MI_CLI_DEVICE_AUTO == (int)MI_SEG_DEVICE_AUTO,
               "--device values are the segmentation module's");
#endif
static int parse_device(const char *s, int *device, int *index) {
  *index = 0;
  if (!strcmp(s, "cpu")) return *device = MI_CLI_DEVICE_CPU, 1;
  if (!strcmp(s, "auto")) return *device = MI_CLI_DEVICE_AUTO, 1;
  if (strncmp(s, "cuda", 4)) return 0;
  *device = MI_CLI_DEVICE_CUDA;
  if (!s[4]) return 1;
  if (s[4] != ':' || !s[5]) return 0;
  char *end = NULL;
  const long v = strtol(s + 5, &end, 10);
  if (!end || *end || v < 0 || v > 1023) return 0;
  *index = (int)v;
  return 1;
}

/* The job behind both commands; `detect` selects the command's card task. */
static int job_command(int argc, char **argv, int detect) {
  const char *cmd = detect ? "detect" : "segment";
  void (*usage)(FILE *) = detect ? detect_usage : segment_usage;
  static const struct option longopts[] = {
      {"model", required_argument, 0, 'm'},  {"input", required_argument, 0, 'i'},
      {"output", required_argument, 0, 'o'}, {"series", required_argument, 0, 's'},
      {"threads", required_argument, 0, 't'}, {"device", required_argument, 0, 'd'},
      {"fractional", no_argument, 0, 'F'},   {"force", no_argument, 0, 'f'},
      {"verbose", no_argument, 0, 'v'},      {"help", no_argument, 0, 'h'},
      {"fast", no_argument, 0, 'x'},         {"bf16", no_argument, 0, 'b'},
      {0, 0, 0, 0}};
  const char *model = NULL, *output = NULL, *series = NULL;
  const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
  size_t n_inputs = 0;
  int threads = 0, device = MI_CLI_DEVICE_CPU, device_index = 0, fast = 0, bf16 = 0, fractional = 0, force = 0,
      verbose = 0;
  if (!inputs) return MI_EXIT_FAILURE;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
    int ok = 1;
    char *end = NULL;
    switch (c) {
      case 'h': free(inputs); usage(stdout); return MI_EXIT_OK;
      case 'm': model = optarg; break;
      case 'i': inputs[n_inputs++] = optarg; break;
      case 'o': output = optarg; break;
      case 's': series = optarg; break;
      case 't': threads = (int)strtol(optarg, &end, 10); ok = end && !*end && threads >= 1 && threads <= 1024; break;
      case 'd': ok = parse_device(optarg, &device, &device_index); break;
      case 'x': fast = 1; break;
      case 'b': bf16 = 1; break;
      case 'F': fractional = 1; ok = !detect; break;
      case 'f': force = 1; break;
      case 'v': verbose = 1; break;
      default: ok = 0; break;
    }
    if (!ok) {
      fprintf(stderr, "medinfer %s: bad option or value: %s\n", cmd, argv[optind - 1]);
      free(inputs);
      usage(stderr);
      return MI_EXIT_USAGE;
    }
  }
  while (optind < argc) inputs[n_inputs++] = argv[optind++];
  if (!model || !output || !n_inputs) {
    fprintf(stderr, "medinfer %s: %s is required\n", cmd, !model ? "--model" : !output ? "--output" : "--input");
    free(inputs);
    usage(stderr);
    return MI_EXIT_USAGE;
  }
#ifndef MEDINFER_HAVE_SEGMENTATION
  (void)series, (void)threads, (void)device, (void)device_index, (void)fast, (void)bf16, (void)fractional,
      (void)force, (void)verbose;
  free(inputs);
  fprintf(stderr, "medinfer %s: this build has no segmentation module\n", cmd);
  return MI_EXIT_UNAVAILABLE;
#else
  mi_card *card = NULL;
  mi_status *st = mi_card_find(model, &card);
  if (!st && strcmp(mi_card_task(card), detect ? "detection" : "segmentation"))
    st = mi_error(MI_ERR_INVALID_ARGUMENT, "%s is a %s model: use 'medinfer %s'", mi_card_name(card),
                  mi_card_task(card), detect ? "segment" : "detect");
  if (st) {
    mi_card_free(card);
    free(inputs);
    return mi_cli_fail(cmd, st);
  }
  ui u = {isatty(2), verbose, "", 0, 0};
  mi_seg_job_options o;
  mi_seg_job_options_init(&o);
  o.inputs = inputs, o.n_inputs = n_inputs, o.output_dir = output, o.series_uid = series, o.force = force;
  o.seg.threads = threads, o.seg.device = device, o.seg.device_index = device_index, o.seg.fast_math = fast;
  o.seg.bf16 = bf16;
  o.seg.fractional = fractional;
  o.on_event = on_event, o.user = &u;
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  mi_seg_job_summary sum;
  st = mi_seg_job_run(card, &o, &sum);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (u.tty && u.bar_shown) fputs("\r\033[K", stderr);
  mi_card_free(card);
  free(inputs);
  if (st) return mi_cli_fail(cmd, st);
  const size_t done = sum.ok + sum.existing;
  fprintf(stderr, "medinfer %s: %zu written, %zu already there, %zu not applicable, %zu failed%s; see %s/report.json\n",
          cmd, sum.ok, sum.existing, sum.skipped, sum.failed, sum.cancelled ? " (interrupted)" : "", output);
  if (sum.cancelled) return MI_EXIT_INTERRUPTED;
  if (sum.failed) return done ? MI_EXIT_PARTIAL : MI_EXIT_FAILURE;
  if (!done) {
    fprintf(stderr, "medinfer %s: no series of the input is one the model applies to\n", cmd);
    return MI_EXIT_FAILURE;
  }
  return MI_EXIT_OK;
#endif
}

int mi_cmd_segment(int argc, char **argv) { return job_command(argc, argv, 0); }
int mi_cmd_detect(int argc, char **argv) { return job_command(argc, argv, 1); }
