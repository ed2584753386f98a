// The review folder: pictures decoded with libpng (not the ITK writer), the
// box outline found around a bright cube of a synthetic volume, the page's
// links, a headless Chromium screenshot of the page, and bad input.
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "findings_test_util.h"
#include "review.h"

namespace {

struct Rgb {
  int w = 0, h = 0;
  std::vector<uint8_t> px;
  const uint8_t *at(int x, int y) const { return &px[3 * ((size_t)y * w + x)]; }
};

bool decode_png(const std::string &path, Rgb *out) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return false;
  img.format = PNG_FORMAT_RGB;
  out->w = (int)img.width, out->h = (int)img.height;
  out->px.resize(PNG_IMAGE_SIZE(img));
  bool ok = png_image_finish_read(&img, nullptr, out->px.data(), 0, nullptr);
  png_image_free(&img);
  return ok;
}

bool near(const uint8_t *p, const uint8_t rgb[3], int tol) {
  for (int c = 0; c < 3; ++c)
    if (std::abs(p[c] - rgb[c]) > tol) return false;
  return true;
}

struct Rect {
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;  // inclusive
  long count = 0;
  void add(int x, int y) { x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y), ++count; }
};

// Pixels of a region of the picture that match `pred`.
template <class P>
Rect find(const Rgb &im, int x0, int y0, int x1, int y1, P pred) {
  Rect r;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      if (pred(im.at(x, y))) r.add(x, y);
  return r;
}

// A 64 x 48 x 20 volume of -1000 with a cube of 200 at voxels
// [20, 29] x [10, 19] x [8, 11]; the window (100, 200) shows it white.
struct Scene {
  TempDir tmp{"review"};
  std::string dir = tmp.path();
  mi_card *card = load_test_card(dir);
  mi_geometry g;
  std::vector<float> vol;
  mi_finding f;
  const int lo[3] = {20, 10, 8}, hi[3] = {29, 19, 11};
  explicit Scene(double rot_deg = 0.0) {
    const double sp[3] = {0.8, 0.6, 2.5};  // anisotropic in plane: the picture keeps the aspect
    g = test_grid(64, 48, 20, sp, rot_deg);
    vol.assign(64 * 48 * 20, -1000.0f);
    for (int k = lo[2]; k <= hi[2]; ++k)
      for (int j = lo[1]; j <= hi[1]; ++j)
        for (int i = lo[0]; i <= hi[0]; ++i) vol[(size_t)i + 64 * ((size_t)j + 48 * (size_t)k)] = 200.0f;
    f = finding_for_voxels(g, lo, hi, 0, 1, 0.87f);
  }
  ~Scene() { mi_card_free(card); }
  mi_status *write(const mi_finding *fs, size_t n, const char *title = "Review") {
    return mi_findings_write_review(card, fs, n, &g, vol.data(), 100.0, 200.0, title, dir.c_str());
  }
};

const uint8_t kWhite[3] = {255, 255, 255};

void check_picture(const Scene &s, const std::string &path) {
  Rgb im;
  ASSERT_TRUE(decode_png(path, &im)) << path;
  mi_review_layout L;
  mi_review_layout_for(&s.g, &L);
  // Longest side 512, aspect from the spacing: 64 * 0.8 mm wide, 48 * 0.6 mm high.
  EXPECT_EQ(L.main_w, 512);
  EXPECT_EQ(L.main_h, (int)std::lround(512.0 * 48 * 0.6 / (64 * 0.8)));
  EXPECT_EQ(im.w, L.width);
  EXPECT_EQ(im.h, L.height);
  const uint8_t *rgb = mi_card_label_at(s.card, 0)->rgb;

  // Main panel: the cube is white and the outline surrounds it exactly.
  Rect bright = find(im, 0, 0, L.main_w, L.main_h, [](const uint8_t *p) { return near(p, kWhite, 0); });
  Rect box = find(im, 0, 0, L.main_w, L.main_h, [&](const uint8_t *p) { return near(p, rgb, 0); });
  ASSERT_GT(bright.count, 0);
  ASSERT_GT(box.count, 0);
  const double sx = (double)L.main_w / 64, sy = (double)L.main_h / 48;
  EXPECT_NEAR(bright.x0, s.lo[0] * sx, 1.0);
  EXPECT_NEAR(bright.x1 + 1, (s.hi[0] + 1) * sx, 1.0);
  EXPECT_NEAR(bright.y0, s.lo[1] * sy, 1.0);
  EXPECT_NEAR(bright.y1 + 1, (s.hi[1] + 1) * sy, 1.0);
  const int line = MI_REVIEW_LINE;
  EXPECT_EQ(box.x0, bright.x0 - line);
  EXPECT_EQ(box.x1, bright.x1 + line);
  EXPECT_EQ(box.y0, bright.y0 - line);
  EXPECT_EQ(box.y1, bright.y1 + line);
  const long bw = bright.x1 - bright.x0 + 1, bh = bright.y1 - bright.y0 + 1;
  EXPECT_EQ(box.count, (bw + 2 * line) * (bh + 2 * line) - bw * bh) << "a closed outline, nothing inside";
  EXPECT_EQ(bright.count, bw * bh) << "the cube is not covered";

  // Strip: slices 8..12 around slice 10; the box reaches 8..11, not 12.
  ASSERT_EQ(s.f.slice, 10);
  const int y0 = L.main_h + MI_REVIEW_GAP;
  for (int t = 0; t < MI_REVIEW_THUMBS; ++t) {
    const int x0 = t * (L.thumb_w + MI_REVIEW_GAP);
    Rect tb = find(im, x0, y0, x0 + L.thumb_w, y0 + L.thumb_h, [&](const uint8_t *p) { return near(p, rgb, 0); });
    Rect tw = find(im, x0, y0, x0 + L.thumb_w, y0 + L.thumb_h, [](const uint8_t *p) { return near(p, kWhite, 0); });
    const int k = 10 + t - MI_REVIEW_THUMBS / 2;
    const bool in_cube = k >= s.lo[2] && k <= s.hi[2];
    EXPECT_EQ(tb.count > 0, in_cube) << "thumbnail of slice " << k;
    EXPECT_EQ(tw.count > 0, in_cube) << "thumbnail of slice " << k;
    if (in_cube) {
      EXPECT_EQ(tb.x0, tw.x0 - 1);
      EXPECT_EQ(tb.x1, tw.x1 + 1);
    }
  }
}

}  // namespace

TEST(Review, PicturesShowTheBoxAroundTheCube) {
  Scene s;
  mi_finding two[2] = {s.f, s.f};
  two[1].score = 0.5f;
  mi_status *st = s.write(two, 2, "Chest CT & <review>");
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  check_picture(s, s.dir + "/finding-1.png");
  check_picture(s, s.dir + "/finding-2.png");

  std::string html = read_text(s.dir + "/index.html");
  EXPECT_NE(html.find("<title>Chest CT &amp; &lt;review&gt;</title>"), std::string::npos);
  for (int i = 1; i <= 2; ++i) {
    std::string img = "src=\"finding-" + std::to_string(i) + ".png\"";
    EXPECT_NE(html.find(img), std::string::npos) << img;
  }
  EXPECT_NE(html.find(">0.870<"), std::string::npos);
  EXPECT_NE(html.find("Nodule 2"), std::string::npos);
  // Self-contained: no scripts, nothing fetched from elsewhere.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex("(src|href)=\"(https?:|//|/)")));
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
}

TEST(Review, ObliqueGridProjectsTheBoxThroughTheGeometry) {
  Scene s(30.0);  // rows and columns rotated in the patient; the box turns with them
  ASSERT_EQ(s.write(&s.f, 1), nullptr);
  check_picture(s, s.dir + "/finding-1.png");
}

TEST(Review, RewriteDropsPicturesOfFindingsNoLongerListed) {
  Scene s;
  mi_finding three[3] = {s.f, s.f, s.f};
  ASSERT_EQ(s.write(three, 3), nullptr);
  ASSERT_EQ(s.write(three, 1), nullptr);
  struct stat st;
  EXPECT_EQ(stat((s.dir + "/finding-1.png").c_str(), &st), 0);
  EXPECT_NE(stat((s.dir + "/finding-2.png").c_str(), &st), 0);
  EXPECT_NE(stat((s.dir + "/finding-3.png").c_str(), &st), 0);
  EXPECT_EQ(read_text(s.dir + "/index.html").find("finding-2.png"), std::string::npos);
}

TEST(Review, NoFindingsGivesAPageSayingSo) {
  Scene s;
  ASSERT_EQ(s.write(nullptr, 0), nullptr);
  std::string html = read_text(s.dir + "/index.html");
  EXPECT_NE(html.find("No findings."), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
}

TEST(Review, BadInputIsAnError) {
  Scene s;
  auto err = [](mi_status *st, mi_code code) {
    EXPECT_NE(st, nullptr);
    std::string m = mi_status_message(st);
    EXPECT_EQ(mi_status_code(st), code) << m;
    mi_status_free(st);
    return m;
  };
  const char *d = s.dir.c_str();
  err(mi_findings_write_review(nullptr, &s.f, 1, &s.g, s.vol.data(), 100, 200, "t", d), MI_ERR_INVALID_ARGUMENT);
  err(mi_findings_write_review(s.card, &s.f, 1, nullptr, s.vol.data(), 100, 200, "t", d), MI_ERR_INVALID_ARGUMENT);
  err(mi_findings_write_review(s.card, &s.f, 1, &s.g, nullptr, 100, 200, "t", d), MI_ERR_INVALID_ARGUMENT);
  err(mi_findings_write_review(s.card, nullptr, 1, &s.g, s.vol.data(), 100, 200, "t", d), MI_ERR_INVALID_ARGUMENT);
  err(mi_findings_write_review(s.card, &s.f, 1, &s.g, s.vol.data(), 100, 200, "t", nullptr), MI_ERR_INVALID_ARGUMENT);
  err(mi_findings_write_review(s.card, &s.f, 1, &s.g, s.vol.data(), 100, 0, "t", d), MI_ERR_INVALID_ARGUMENT);

  // A finding whose slice is outside the volume: refused before anything is
  // written, and the message names the finding and the slice.
  mi_finding out[2] = {s.f, s.f};
  out[1].slice = 20;
  std::string fresh = s.dir + "/fresh";
  std::string m = err(mi_findings_write_review(s.card, out, 2, &s.g, s.vol.data(), 100, 200, "t", fresh.c_str()),
                      MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(m.find("finding 2: slice 20 is outside the volume (0..19)"), std::string::npos) << m;
  struct stat st;
  EXPECT_NE(stat(fresh.c_str(), &st), 0);
  out[1].slice = -1;
  err(mi_findings_write_review(s.card, out, 2, &s.g, s.vol.data(), 100, 200, "t", fresh.c_str()),
      MI_ERR_INVALID_ARGUMENT);

  // An unwritable folder: below a regular file (fails for root too).
  std::string file = s.dir + "/plain";
  std::ofstream(file) << "x";
  std::string below = file + "/review";
  m = err(mi_findings_write_review(s.card, &s.f, 1, &s.g, s.vol.data(), 100, 200, "t", below.c_str()), MI_ERR_IO);
  EXPECT_NE(m.find(below), std::string::npos) << m;
}

// The page as a browser draws it: headless Chromium, then the screenshot
// must show the picture (grey levels and the label colour), not a blank page.
TEST(Review, ChromiumRendersThePage) {
  std::string browser;
  for (const char *c : {"chromium", "chromium-browser", "google-chrome"}) {
    std::string probe = std::string("command -v ") + c + " >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      browser = c;
      break;
    }
  }
  if (browser.empty()) GTEST_SKIP() << "no chromium on PATH (scripts/install-deps.sh installs it)";
  Scene s;
  ASSERT_EQ(s.write(&s.f, 1, "Screenshot"), nullptr);
  std::string shot = s.dir + "/shot.png", profile = s.dir + "/profile";
  std::string cmd = browser + " --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir='" + profile +
                    "' --force-device-scale-factor=1 --window-size=1200,900 --screenshot='" + shot + "' 'file://" +
                    s.dir + "/index.html' >'" + s.dir + "/chromium.log' 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << cmd << "\n" << read_text(s.dir + "/chromium.log");
  Rgb im;
  ASSERT_TRUE(decode_png(shot, &im)) << read_text(s.dir + "/chromium.log");
  EXPECT_EQ(im.w, 1200);
  EXPECT_EQ(im.h, 900);
  long dark = 0, box = 0;
  std::vector<char> seen(1 << 24, 0);
  long distinct = 0;
  const uint8_t *rgb = mi_card_label_at(s.card, 0)->rgb;
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x) {
      const uint8_t *p = im.at(x, y);
      int key = p[0] << 16 | p[1] << 8 | p[2];
      if (!seen[key]) seen[key] = 1, ++distinct;
      dark += p[0] < 64 && p[1] < 64 && p[2] < 64;
      box += near(p, rgb, 6);
    }
  // The picture's dark background alone covers 512 x ~460 pixels.
  EXPECT_GT(dark, 100000) << "no picture on the page";
  EXPECT_GT(box, 200) << "no box outline on the page";
  EXPECT_GT(distinct, 8);
}
