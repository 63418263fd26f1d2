#!/usr/bin/env bash
# Installs the Debian packages edgekit needs (cross compilers, QEMU, venv support), only those missing.
set -euo pipefail
packages=(
  python3-venv
  gcc make cmake
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# python3-venv is only needed where python3 is Debian's; a pyenv or other Python brings venv itself.
if python3 -c "import venv, ensurepip" 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
