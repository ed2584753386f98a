#!/usr/bin/env bash
# Installs medinfer into a temporary prefix, moves it elsewhere, and uses it
# from there as a user would: the medinfer command, the installed model
# cards, the Slicer CLI module in both forms (the executable, and the library
# through the Slicer-style harness of tests/plugin), and a program built
# against the install with pkg-config and with find_package(medinfer).  Then
# the packages made by cpack (packaging_cpack): the tarball unpacked and run
# the same way, the .deb's control fields, contents, and its tree run from an
# extracted copy.
#
# usage: install_test.sh BUILD VERSION CLI_DIR LIBDIR XML SOURCE HARNESS WORK [PACKAGES]
set -euo pipefail
build=$1 version=$2 cli_dir=$3 libdir=$4 xml=$5 src=$6 harness=$7 work=$8 packages=${9:-}
soversion=${version%%.*}
unset MEDINFER_MODEL_PATH LD_LIBRARY_PATH
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "-- $*"; }

rm -rf "$work"
mkdir -p "$work"

# ---------------------------------------------------------------- one tree
# Fast checks of an installed tree ($1): layout, libraries resolved inside it,
# the command and the module's --xml.
check_tree() {
  local p=$1 what=$2
  step "$what: layout"
  for f in bin/medinfer "$libdir/libmedinfer_engine.so.$soversion" "$libdir/libmedinfer_engine.so" \
           "$cli_dir/MedinferSegment" "$cli_dir/libMedinferSegmentLib.so" \
           include/medinfer/engine.h include/medinfer/status.h "$libdir/pkgconfig/medinfer.pc" \
           "$libdir/cmake/medinfer/medinferConfig.cmake" "$libdir/cmake/medinfer/medinferTargets.cmake" \
           share/medinfer/models/demo-organs/demo-organs.card.json share/medinfer/models/demo-organs/demo-organs.onnx \
           share/doc/medinfer/LICENSE share/doc/medinfer/README.md; do
    [ -e "$p/$f" ] || fail "$what: $f is not installed"
  done
  # Slicer would read a MedinferSegment.xml instead of the library's symbol.
  [ ! -e "$p/$cli_dir/MedinferSegment.xml" ] || fail "$what: MedinferSegment.xml beside the module"
  # Slicer's loadable-module pattern ^lib.+Lib\.so$ must match only the module.
  local libs
  libs=$(cd "$p/$cli_dir" && ls | grep -E '^lib.+Lib\.so$' || true)
  [ "$libs" = libMedinferSegmentLib.so ] || fail "$what: CLI libraries in $cli_dir: $libs"

  step "$what: libraries resolve inside the tree (RUNPATH \$ORIGIN)"
  local real_p
  real_p=$(realpath "$p")
  for f in bin/medinfer "$cli_dir/MedinferSegment" "$cli_dir/libMedinferSegmentLib.so"; do
    local deps
    deps=$(ldd "$p/$f") || fail "$what: ldd $f"
    if grep -q "not found" <<<"$deps"; then fail "$what: $f: $(grep 'not found' <<<"$deps")"; fi
    local eng
    eng=$(awk '/libmedinfer_engine/ {print $3}' <<<"$deps")
    [ -n "$eng" ] || fail "$what: $f does not link libmedinfer_engine"
    case "$(realpath "$eng")" in
      "$real_p"/*) ;;
      *) fail "$what: $f loads $eng, outside $p" ;;
    esac
    local rpath
    rpath=$(readelf -d "$p/$f" | sed -n 's/.*R\(UN\)\?PATH.*\[\(.*\)\]/\2/p')
    IFS=: read -ra parts <<<"$rpath"
    for d in "${parts[@]}"; do
      case "$d" in
        '$ORIGIN' | '$ORIGIN/'*) ;;
        *) fail "$what: $f has a RUNPATH entry outside the tree: '$d' (in '$rpath')" ;;
      esac
    done
  done

  step "$what: medinfer --version, medinfer models"
  local out
  out=$("$p/bin/medinfer" --version)
  [ "$out" = "medinfer $version" ] || fail "$what: --version printed '$out'"
  "$p/bin/medinfer" models -v >"$work/models.out" 2>"$work/models.err" || fail "$what: medinfer models failed"
  [ ! -s "$work/models.err" ] || fail "$what: medinfer models warned: $(cat "$work/models.err")"
  local card
  card=$(awk '$1 == "card" && $2 ~ /demo-organs.card.json$/ {print $2}' "$work/models.out")
  [ -n "$card" ] || fail "$what: demo-organs not listed: $(cat "$work/models.out")"
  [ "$(realpath "$card")" = "$real_p/share/medinfer/models/demo-organs/demo-organs.card.json" ] ||
    fail "$what: demo-organs listed from $card, not from the installation"

  step "$what: MedinferSegment --xml"
  "$p/$cli_dir/MedinferSegment" --xml >"$work/xml.out" 2>"$work/xml.err" || fail "$what: --xml failed"
  [ ! -s "$work/xml.err" ] || fail "$what: --xml wrote to stderr: $(cat "$work/xml.err")"
  cmp -s "$work/xml.out" "$xml" || fail "$what: --xml differs from $xml"
}

# ------------------------------------------------------ cmake --install
step "cmake --install into a temporary prefix, then moved"
cmake --install "$build" --prefix "$work/staged" >"$work/install.log"
mv "$work/staged" "$work/prefix"
P=$work/prefix
check_tree "$P" install

# A card only the installation has: found by name by the command and by the
# module (through <module>/../../../share/medinfer/models), with the
# installed network.
step "install: the module segments a phantom with an installed card"
models=$P/share/medinfer/models/demo-organs
sed 's/"name": *"demo-organs"/"name": "installed-organs"/' "$models/demo-organs.card.json" \
  >"$models/installed-organs.card.json"
grep -q '"installed-organs"' "$models/installed-organs.card.json" || fail "could not rename the card"
listing=$("$P/bin/medinfer" models)
grep -q '^installed-organs ' <<<"$listing" || fail "medinfer models does not list installed-organs: $listing"
# 64 x 64 x 32 voxels of 2 mm: one patch of the model's 3 mm grid.
"$P/bin/medinfer" phantom --out "$work/phantom" --size 64x64x32 --spacing 2,2,2 --seed 7 >/dev/null
mkdir -p "$work/out"
t0=$(date +%s%N)
"$P/$cli_dir/MedinferSegment" --model installed-organs --threads 2 --returnparameterfile "$work/out/return.params" \
  --outputSegmentationFile "$work/out/organs.seg.nrrd" "$work/phantom/truth/image.nrrd" "$work/out/labels.nrrd" \
  >"$work/segment.out" 2>"$work/segment.err" || fail "MedinferSegment failed: $(cat "$work/segment.err")"
echo "   segmented in $((($(date +%s%N) - t0) / 1000000)) ms"
grep -q '<filter-end>' "$work/segment.out" || fail "no <filter-end> from MedinferSegment"
[ -s "$work/out/labels.nrrd" ] && [ -s "$work/out/organs.seg.nrrd" ] || fail "outputs missing: $(ls "$work/out")"
sizes_in=$(grep -a -m1 '^sizes:' "$work/phantom/truth/image.nrrd")
sizes_out=$(grep -a -m1 '^sizes:' "$work/out/labels.nrrd")
[ "$sizes_in" = "$sizes_out" ] || fail "label volume $sizes_out, input $sizes_in"
grep -a -q '^Segment0_Name:=' "$work/out/organs.seg.nrrd" || fail "no segment names in the .seg.nrrd header"
grep -q '^segmentVolumes = ' "$work/out/return.params" || fail "return parameters: $(cat "$work/out/return.params")"

step "install: the Slicer-style harness dlopens the installed library"
MEDINFER_PLUGIN_LIB=$P/$cli_dir/libMedinferSegmentLib.so MEDINFER_PLUGIN_EXE=$P/$cli_dir/MedinferSegment \
  MEDINFER_PLUGIN_WORK=$work/harness MI_PLUGIN_RUNS=1 \
  "$harness" --gtest_brief=1 \
  --gtest_filter='Plugin.LibraryExportsWhatSlicerResolves:Plugin.XmlParsesAsSlicerExpects:Plugin.ExecutableXmlEqualsLibrary:Plugin.RepeatedLibraryCalls' \
  >"$work/harness.log" 2>&1 || { cat "$work/harness.log"; fail "plugin harness on the installed module"; }
grep -q '4 tests' "$work/harness.log" || { cat "$work/harness.log"; fail "the harness did not run 4 tests"; }

# Programs built against the installation.
consumer_checks() {
  local p=$1 what=$2
  step "$what: a program built with pkg-config"
  local pc="env PKG_CONFIG_PATH=$p/$libdir/pkgconfig pkg-config"
  [ "$($pc --modversion medinfer)" = "$version" ] || fail "$what: pkg-config version"
  [ -d "$($pc --variable=modelsdir medinfer)/demo-organs" ] || fail "$what: pkg-config modelsdir"
  # shellcheck disable=SC2046
  cc -o "$work/consumer-pc" "$src/tests/packaging/consumer/consumer.c" $($pc --cflags --libs medinfer) \
    -Wl,-rpath,"$p/$libdir" || fail "$what: pkg-config build"
  "$work/consumer-pc" "$p/share/medinfer/models/demo-organs/demo-organs.onnx" >"$work/consumer.out" ||
    fail "$what: pkg-config consumer failed"
  grep -q "^engine $version" "$work/consumer.out" && grep -q '^inputs 1 outputs 1' "$work/consumer.out" ||
    fail "$what: consumer printed $(cat "$work/consumer.out")"

  step "$what: a program built with find_package(medinfer)"
  rm -rf "$work/consumer-cmake"
  cmake -S "$src/tests/packaging/consumer" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$p" \
    -DCMAKE_BUILD_TYPE=Release >"$work/consumer-cmake.log" 2>&1 || { cat "$work/consumer-cmake.log"; fail "$what: configure"; }
  cmake --build "$work/consumer-cmake" >>"$work/consumer-cmake.log" 2>&1 || { cat "$work/consumer-cmake.log"; fail "$what: build"; }
  "$work/consumer-cmake/consumer" "$p/share/medinfer/models/demo-organs/demo-organs.onnx" >"$work/consumer.out" ||
    fail "$what: CMake consumer failed"
  grep -q '^inputs 1 outputs 1' "$work/consumer.out" || fail "$what: consumer printed $(cat "$work/consumer.out")"
  local deps
  deps=$(ldd "$work/consumer-cmake/consumer")
  grep -qF "$p/$libdir/libmedinfer_engine.so.$soversion" <<<"$deps" ||
    fail "$what: the CMake consumer does not use the installed engine: $deps"
}
consumer_checks "$P" install

# ------------------------------------------------------ packages
[ -n "$packages" ] || { echo "no package folder given: packages not checked"; exit 0; }
tgz=$packages/medinfer-$version-Linux.tar.gz
[ -f "$tgz" ] || fail "$tgz was not built"
step "tarball: $(du -h "$tgz" | cut -f1) $tgz"
mkdir -p "$work/tgz"
tar -xzf "$tgz" -C "$work/tgz"
check_tree "$work/tgz/medinfer-$version-Linux" tarball
consumer_checks "$work/tgz/medinfer-$version-Linux" tarball

shopt -s nullglob
debs=("$packages"/medinfer_"$version"-*.deb)
if ! command -v dpkg-deb >/dev/null; then
  echo "no dpkg-deb: .deb not checked"
  exit 0
fi
[ ${#debs[@]} -eq 1 ] || fail "expected one medinfer_$version-*.deb in $packages, found ${#debs[@]}"
deb=${debs[0]}
step ".deb: $(du -h "$deb" | cut -f1) $deb"
[ "$(dpkg-deb -f "$deb" Package)" = medinfer ] || fail ".deb Package field"
case "$(dpkg-deb -f "$deb" Version)" in "$version"-*) ;; *) fail ".deb Version $(dpkg-deb -f "$deb" Version)" ;; esac
depends=$(dpkg-deb -f "$deb" Depends)
echo "   Depends: $depends"
for d in libc6 libopenblas libprotobuf-c libjson-c libdcmtk libinsighttoolkit; do
  grep -q "$d" <<<"$depends" || fail ".deb Depends lacks $d: $depends"
done
if grep -q 'medinfer' <<<"$depends"; then fail ".deb depends on itself: $depends"; fi
dpkg-deb -c "$deb" >"$work/deb.list"
for f in ./usr/bin/medinfer "./usr/$libdir/libmedinfer_engine.so.$soversion" "./usr/$cli_dir/MedinferSegment" \
         "./usr/$cli_dir/libMedinferSegmentLib.so" ./usr/include/medinfer/engine.h \
         "./usr/$libdir/pkgconfig/medinfer.pc" ./usr/share/medinfer/models/demo-organs/demo-organs.onnx; do
  grep -q " $f\( ->.*\)\?$" "$work/deb.list" || fail ".deb lacks $f"
done
if grep -q '_CPack_Packages\|/build/' "$work/deb.list"; then fail ".deb holds build paths"; fi
mkdir -p "$work/deb"
dpkg-deb -x "$deb" "$work/deb"
check_tree "$work/deb/usr" ".deb (extracted)"
echo "OK"
