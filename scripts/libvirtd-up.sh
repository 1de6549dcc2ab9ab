#!/usr/bin/env bash
# Bring up a real libvirtd with the QEMU driver on a machine without systemd (CI, containers),
# the way shared/reference/libvirt-probe.md section 5 found to work. Idempotent: when
# qemu:///system already answers it changes nothing and exits 0. Needs root and the Debian
# packages libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils libvirt-clients.
set -euo pipefail

URI="qemu:///system"
SOCKET=/run/libvirt/libvirt-sock
LOG=/var/log/libvirt/libvirtd.log

fail() { echo "libvirtd-up: $*" >&2; exit 1; }

answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it starts libvirtd and writes /etc/libvirt/qemu.conf)"
for tool in libvirtd virsh qemu-system-x86_64 qemu-img; do
  command -v "$tool" >/dev/null ||
    fail "$tool not found: apt-get install -y --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils libvirt-clients"
done

# Test runners call this from several processes at once (pytest -n): one brings libvirtd up,
# the others wait here and then find it answering.
exec 9>/run/gpucloud-libvirtd-up.lock
flock -w 120 9 || fail "another libvirtd-up.sh held /run/gpucloud-libvirtd-up.lock for 120 s"

if answers; then
  echo "libvirtd-up: $URI already answers"
  exit 0
fi

# The QEMU driver resolves its default user before reading qemu.conf, so it must exist.
getent passwd libvirt-qemu >/dev/null ||
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin libvirt-qemu

# QEMU as root: as libvirt-qemu every define re-probes capabilities (~50 s) since /dev/kvm is
# root-only here. stdio_handler=file: no virtlogd needed.
CONF=/etc/libvirt/qemu.conf
if [ ! -s "$CONF" ]; then
  mkdir -p /etc/libvirt
  printf '# written by gpucloud scripts/libvirtd-up.sh\nuser = "root"\ngroup = "root"\nstdio_handler = "file"\n' >"$CONF"
elif ! grep -q '^user = "root"' "$CONF" || ! grep -q '^stdio_handler = "file"' "$CONF"; then
  fail "$CONF exists without user = \"root\" and stdio_handler = \"file\"; add them or remove the file"
fi

# A libvirtd that runs but does not answer (stale pid file, hung) is restarted.
if [ -s /run/libvirtd.pid ] && kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null; then
  kill "$(cat /run/libvirtd.pid)" || true
  for _ in $(seq 50); do kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null || break; sleep 0.1; done
fi

mkdir -p /var/log/libvirt /run/libvirt
# the daemon must not inherit the lock (fd 9) or the test runner's pipes
LIBVIRT_LOG_OUTPUTS="3:file:$LOG" libvirtd --daemon </dev/null >>"$LOG" 2>&1 9>&-
for _ in $(seq 100); do
  [ -S "$SOCKET" ] && answers && break
  sleep 0.2
done
answers || fail "libvirtd started but $URI does not answer; see $LOG"
echo "libvirtd-up: $(virsh -c "$URI" version | grep -i 'running hypervisor')"
