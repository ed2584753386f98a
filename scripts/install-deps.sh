#!/usr/bin/env bash
# Installs the Debian 12 packages medinfer builds and tests with (only those missing).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libdcmtk-dev dcmtk libinsighttoolkit5-dev libopenblas-dev
      libprotobuf-c-dev protobuf-c-compiler libgtest-dev libjson-c-dev libexpat1-dev valgrind
      dicom3tools python3-numpy python3-pydicom python3-torch python3-torchvision python3-onnx
      libpng-dev python3-jsonschema chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
