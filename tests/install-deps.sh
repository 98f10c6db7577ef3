#!/usr/bin/env bash
# Installs what ohmpeer needs to build, test and run its demo on Debian 12.
# Does nothing when everything is already installed (so repeated runs are quick).
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config
      libzmq3-dev libsodium-dev libmsgpack-dev libcriterion-dev zlib1g-dev libopenblas-dev liblapacke-dev
      dataset-fashion-mnist python3 gnuplot-nox clang iproute2 openssh-server openssh-client
      python3-matplotlib python3-networkx chromium)
# python3-matplotlib and python3-networkx draw ohm-report's pages; chromium (headless)
# checks them in the test suite (tests/test_report.py).
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
