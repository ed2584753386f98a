/* Which cards are installed, finding one by name, and whether a card applies
 * to a series. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "card_internal.h"

int mi_card_applies(const mi_card *c, const char *modality, const char *body_part, const int64_t size[3],
                    char *why, size_t why_size) {
  char tmp[8];
  if (!why) why = tmp, why_size = sizeof tmp;
  why[0] = 0;
  if (!c) return snprintf(why, why_size, "no card"), 0;
  if (c->n_modality) {
    int ok = 0;
    for (size_t i = 0; modality && i < c->n_modality; ++i) ok |= !strcasecmp(c->modality[i], modality);
    if (!ok) {
      snprintf(why, why_size, "modality %s not in [%s]", modality && *modality ? modality : "(none)",
               c->modality_text);
      return 0;
    }
  }
  if (c->n_body_part && body_part && *body_part) {
    int ok = 0;
    for (size_t i = 0; i < c->n_body_part; ++i) ok |= !strcasecmp(c->body_part[i], body_part);
    if (!ok) return snprintf(why, why_size, "body part %s not accepted by %s", body_part, c->name), 0;
  }
  if (size)
    for (int i = 0; i < 3; ++i)
      if (size[i] < c->min_size[i]) {
        snprintf(why, why_size, "%lldx%lldx%lld is smaller than the model's minimum %lldx%lldx%lld",
                 (long long)size[0], (long long)size[1], (long long)size[2], (long long)c->min_size[0],
                 (long long)c->min_size[1], (long long)c->min_size[2]);
        return 0;
      }
  return 1;
}

struct mi_card_list {
  mi_card **cards;
  size_t n, cap;
  char **problems;
  size_t n_problems, cap_problems;
};

static int push(void ***arr, size_t *n, size_t *cap, void *item) {
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 8;
    void **a = realloc(*arr, nc * sizeof *a);
    if (!a) return 0;
    *arr = a, *cap = nc;
  }
  (*arr)[(*n)++] = item;
  return 1;
}

static void add_problem(mi_card_list *l, const char *msg) {
  char *d = strdup(msg);
  if (d && !push((void ***)&l->problems, &l->n_problems, &l->cap_problems, d)) free(d);
}

static int is_dir(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Cards directly in `dir` (sorted by name so the listing is stable). */
static void scan_cards(mi_card_list *l, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char *names[256];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256)
    if (ends_with(e->d_name, ".card.json")) names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; ++i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    free(names[i]);
    mi_card *c = NULL;
    mi_status *st = mi_card_load(path, &c);
    if (st) {
      add_problem(l, mi_status_message(st));
      mi_status_free(st);
      continue;
    }
    int dup = 0;
    for (size_t j = 0; j < l->n && !dup; ++j) dup = !strcmp(l->cards[j]->name, c->name);
    if (dup) {
      char msg[4200];
      snprintf(msg, sizeof msg, "%s: name \"%s\" already installed; this card is ignored", path, c->name);
      add_problem(l, msg);
      mi_card_free(c);
    } else if (!push((void ***)&l->cards, &l->n, &l->cap, c)) {
      mi_card_free(c);
    }
  }
}

/* A models folder: its cards and those of its immediate subfolders. */
static void scan_models_dir(mi_card_list *l, const char *dir) {
  if (!is_dir(dir)) return;
  scan_cards(l, dir);
  DIR *d = opendir(dir);
  if (!d) return;
  char *subs[256];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256)
    if (e->d_name[0] != '.') subs[n++] = strdup(e->d_name);
  closedir(d);
  qsort(subs, n, sizeof *subs, cmp_str);
  for (size_t i = 0; i < n; ++i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
    free(subs[i]);
    if (is_dir(path)) scan_cards(l, path);
  }
}

mi_status *mi_card_list_installed(mi_card_list **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_card_list_installed: out is NULL");
  mi_card_list *l = calloc(1, sizeof *l);
  if (!l) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  const char *env = getenv("MEDINFER_MODEL_PATH");
  if (env && *env) {
    char *copy = strdup(env), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ":", &save) : NULL; p; p = strtok_r(NULL, ":", &save)) scan_models_dir(l, p);
    free(copy);
  }
  /* <prefix>/bin/medinfer -> <prefix>/share/medinfer/models */
  int installed = 0;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      strcpy(slash, "/../share/medinfer/models");
      installed = is_dir(exe);
      scan_models_dir(l, exe);
    }
  }
#ifdef MEDINFER_SOURCE_MODELS_DIR
  /* The source tree's models serve a build tree; an installation uses its
   * own (and would otherwise list every shipped card twice). */
  if (!installed) scan_models_dir(l, MEDINFER_SOURCE_MODELS_DIR);
#else
  (void)installed;
#endif
  *out = l;
  return NULL;
}

void mi_card_list_free(mi_card_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; ++i) mi_card_free(l->cards[i]);
  for (size_t i = 0; i < l->n_problems; ++i) free(l->problems[i]);
  free(l->cards), free(l->problems), free(l);
}

size_t mi_card_list_count(const mi_card_list *l) { return l ? l->n : 0; }
const mi_card *mi_card_list_at(const mi_card_list *l, size_t i) { return l && i < l->n ? l->cards[i] : NULL; }
size_t mi_card_list_problem_count(const mi_card_list *l) { return l ? l->n_problems : 0; }
const char *mi_card_list_problem(const mi_card_list *l, size_t i) {
  return l && i < l->n_problems ? l->problems[i] : "";
}

mi_status *mi_card_find(const char *name_or_path, mi_card **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_card_find: out is NULL");
  *out = NULL;
  if (!name_or_path || !*name_or_path) return mi_error(MI_ERR_INVALID_ARGUMENT, "no model name or card given");
  struct stat s;
  if ((stat(name_or_path, &s) == 0 && S_ISREG(s.st_mode)) || ends_with(name_or_path, ".json") ||
      strchr(name_or_path, '/'))
    return mi_card_load(name_or_path, out);
  mi_card_list *l = NULL;
  MI_TRY(mi_card_list_installed(&l));
  for (size_t i = 0; i < l->n; ++i)
    if (!strcmp(l->cards[i]->name, name_or_path)) {
      mi_status *st = mi_card_load(l->cards[i]->path, out);
      mi_card_list_free(l);
      return st;
    }
  char names[1024] = "";
  for (size_t i = 0; i < l->n; ++i) {
    if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
    strncat(names, l->cards[i]->name, sizeof names - strlen(names) - 1);
  }
  mi_status *st = mi_error(MI_ERR_INVALID_ARGUMENT, "no installed model named \"%s\" (installed: %s)", name_or_path,
                           l->n ? names : "none; see 'medinfer models'");
  mi_card_list_free(l);
  return st;
}
