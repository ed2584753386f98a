/* medinfer phantom --out DIR [options]: a synthetic study and its truth. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

#ifdef MEDINFER_HAVE_PHANTOM
#include "medinfer/phantom.h"
#endif

static void phantom_usage(FILE *to) {
  fprintf(to,
          "usage: medinfer phantom --out DIR [options]\n"
          "\n"
          "Write a synthetic torso study as a DICOM series (DIR/dicom) and its\n"
          "ground truth (DIR/truth: labels.nrrd, image.nrrd, labels.json).\n"
          "\n"
          "  --out DIR               output folder (created)\n"
          "  --seed N                shape variation, texture and noise (default 1)\n"
          "  --size CxRxS            columns x rows x slices (default 256x256x120)\n"
          "  --spacing X,Y,Z         voxel spacing in mm (default: cover the torso)\n"
          "  --orientation O         axial | coronal | sagittal | oblique\n"
          "  --tilt DEG              gantry tilt\n"
          "  --reverse               number slices against the stacking direction\n"
          "  --missing-slice K       leave slice K out of the DICOM series\n"
          "  --enhanced              one Enhanced CT multi-frame file\n"
          "  --transfer-syntax TS    explicit-le | implicit-le | explicit-be | deflated |\n"
          "                          rle | jpeg-lossless | jpeg-ls\n"
          "  --mr                    MR-like signal instead of CT\n"
          "  --contrast              contrast-enhanced aorta\n"
          "  --lesions N             N small spherical lesions\n"
          "  --noise SIGMA           noise SD (HU or MR units; 0 = none)\n"
          "  --help                  this text\n"
          "\n"
          "Exit status: 0 written, 1 failed, 2 usage, 3 built without the phantom module.\n");
}

#ifdef MEDINFER_HAVE_PHANTOM
static int parse_orientation(const char *s, mi_phantom_orientation *o) {
  static const char *names[] = {"axial", "coronal", "sagittal", "oblique"};
  for (int i = 0; i < 4; ++i)
    if (!strcmp(s, names[i])) return *o = (mi_phantom_orientation)i, 1;
  return 0;
}

static int parse_syntax(const char *s, mi_phantom_transfer_syntax *ts) {
  static const char *names[] = {"explicit-le", "implicit-le", "explicit-be", "deflated",
                                "rle",         "jpeg-lossless", "jpeg-ls"};
  for (int i = 0; i < 7; ++i)
    if (!strcmp(s, names[i])) return *ts = (mi_phantom_transfer_syntax)i, 1;
  return 0;
}
#endif

int mi_cmd_phantom(int argc, char **argv) {
  static const struct option longopts[] = {
      {"out", required_argument, 0, 'o'},       {"seed", required_argument, 0, 's'},
      {"size", required_argument, 0, 'z'},      {"spacing", required_argument, 0, 'p'},
      {"orientation", required_argument, 0, 'r'}, {"tilt", required_argument, 0, 't'},
      {"reverse", no_argument, 0, 'v'},         {"missing-slice", required_argument, 0, 'm'},
      {"enhanced", no_argument, 0, 'e'},        {"transfer-syntax", required_argument, 0, 'x'},
      {"mr", no_argument, 0, 'M'},              {"contrast", no_argument, 0, 'c'},
      {"lesions", required_argument, 0, 'l'},   {"noise", required_argument, 0, 'n'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
#ifdef MEDINFER_HAVE_PHANTOM
  mi_phantom_options o;
  mi_phantom_options_init(&o);
#endif
  const char *out = NULL;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    int ok = 1;
    switch (c) {
      case 'h': phantom_usage(stdout); return MI_EXIT_OK;
      case 'o': out = optarg; break;
#ifdef MEDINFER_HAVE_PHANTOM
      case 's': o.seed = strtoull(optarg, NULL, 10); break;
      case 'z': {
        long long a, b, d;
        ok = sscanf(optarg, "%lldx%lldx%lld", &a, &b, &d) == 3;
        o.size[0] = a, o.size[1] = b, o.size[2] = d;
        break;
      }
      case 'p': ok = sscanf(optarg, "%lf,%lf,%lf", &o.spacing[0], &o.spacing[1], &o.spacing[2]) == 3; break;
      case 'r': ok = parse_orientation(optarg, &o.orientation); break;
      case 't': o.gantry_tilt_deg = atof(optarg); break;
      case 'v': o.reverse_slices = 1; break;
      case 'm': o.missing_slice = atoll(optarg); break;
      case 'e': o.enhanced = 1; break;
      case 'x': ok = parse_syntax(optarg, &o.transfer_syntax); break;
      case 'M': o.modality = MI_PHANTOM_MR; break;
      case 'c': o.contrast = 1; break;
      case 'l': o.lesions = atoi(optarg); break;
      case 'n': o.noise_sigma = atof(optarg); break;
#else
      case 's': case 'z': case 'p': case 'r': case 't': case 'v': case 'm': case 'e': case 'x': case 'M':
      case 'c': case 'l': case 'n': break;
#endif
      default: ok = 0; break;
    }
    if (!ok) {
      fprintf(stderr, "medinfer phantom: bad option or value: %s\n", argv[optind - 1]);
      phantom_usage(stderr);
      return MI_EXIT_USAGE;
    }
  }
  if (!out || optind != argc) {
    fprintf(stderr, "medinfer phantom: %s\n", out ? "unexpected argument" : "--out DIR is required");
    phantom_usage(stderr);
    return MI_EXIT_USAGE;
  }
#ifndef MEDINFER_HAVE_PHANTOM
  fprintf(stderr, "medinfer phantom: this build has no phantom module\n");
  return MI_EXIT_UNAVAILABLE;
#else
  mi_phantom *p = NULL;
  mi_status *st = mi_phantom_generate(&o, &p);
  if (!st) st = mi_phantom_write_study(p, out);
  if (st) {
    mi_phantom_free(p);
    return mi_cli_fail("phantom", st);
  }
  printf("wrote %s/dicom (%lldx%lldx%lld, %s) and %s/truth\n", out, (long long)p->geometry.size[0],
         (long long)p->geometry.size[1], (long long)p->geometry.size[2],
         mi_phantom_transfer_syntax_uid(p->options.transfer_syntax), out);
  mi_phantom_free(p);
  return MI_EXIT_OK;
#endif
}
