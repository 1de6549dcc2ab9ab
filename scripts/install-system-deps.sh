#!/usr/bin/env bash
# Debian packages the test suite needs: libvirt (test driver, schemas, virsh, headers for
# libvirt-python), a real libvirtd with QEMU for software-emulated guests, and Chromium for the
# admin UI tests, and cloud-init, whose schema validator checks customers' cloud-config (and whose
# parsers check the network-config we write).
# Installs only what is missing; needs root (or sudo) when something is.
set -euo pipefail
packages=(libvirt-dev libvirt-clients libxml2-utils pkg-config gcc libvirt-daemon libvirt-daemon-driver-qemu
          qemu-system-x86 qemu-utils chromium cloud-init)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
