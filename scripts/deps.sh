#!/usr/bin/env bash
# Installs what building, running and testing the R58 firmware needs on Debian 12: the
# build dependencies and everything any command of the repository uses at run time (the
# GStreamer elements the recorder builds, the tools the scripts, tests and benches call).
# Idempotent: installs only what is missing. Sourced by scripts/run and scripts/test;
# scripts/fresh-machine-check proves the list on a clean Debian 12 root.
set -euo pipefail

R58_DEBIAN_PACKAGES=(
  build-essential pkg-config curl ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-rtsp gstreamer1.0-nice gstreamer1.0-x gstreamer1.0-alsa
  ffmpeg bc coturn mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev
  postgresql postgresql-client chromium fonts-dejavu-core
  rauc rauc-service squashfs-tools dbus-daemon e2fsprogs openssl
  # The virtual R58 (hil-tests/vr58): QEMU, its disk (GPT, FAT, ext4), U-Boot's tools and
  # libubootenv's fw_setenv, and what building U-Boot from Debian's source needs.
  qemu-system-x86 fdisk dosfstools mtools u-boot-tools libubootenv-tool iproute2
  dpkg-dev bison flex swig bc libssl-dev libgnutls28-dev uuid-dev python3-dev
  python3-pyelftools python3-libfdt acpica-tools device-tree-compiler
  # RAUC from Debian's source with HTTP streaming (hil-tests/vr58/build-rauc).
  libnl-genl-3-dev libcurl4-gnutls-dev libdbus-1-dev libfdisk-dev libjson-glib-dev
  autoconf automake libtool
  # The benches' WebRTC peers (bench/whip.py): GStreamer from Python.
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
)

# The external programs that scripts, tests and benches call, each from a package above.
R58_TOOLS=(
  gst-launch-1.0 gst-inspect-1.0 ffmpeg ffprobe bc curl openssl
  mosquitto mosquitto_sub turnserver turnutils_uclient
  rauc dbus-daemon mksquashfs mkfs.ext4 truncate dd
  chromium psql
  qemu-system-x86_64 sfdisk mkfs.vfat mcopy mkimage fw_printenv fw_setenv debugfs dpkg-source ip unshare
)

# Prints each tool of R58_TOOLS (and PostgreSQL's server binaries) that is not installed.
r58_missing_tools() {
  local t
  for t in "${R58_TOOLS[@]}"; do
    command -v "$t" >/dev/null 2>&1 || echo "$t"
  done
  for t in initdb pg_ctl postgres; do
    compgen -G "/usr/lib/postgresql/*/bin/$t" >/dev/null || echo "$t"
  done
}

# The Debian mirror this machine's apt uses (deb822 or one-line sources), else Debian's own:
# for roots made with debootstrap (scripts/fresh-machine-check, hil-tests/vr58/build-image).
r58_debian_mirror() {
  local m
  m=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

r58_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

r58_install_packages() {
  local missing
  mapfile -t missing < <(r58_missing_packages "$@")
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Tests start their own PostgreSQL in temp folders: no system-wide cluster on :5432.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
      $sudo mkdir -p /etc/postgresql-common
      echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

r58_ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # Debian 12's own cargo (1.63) is too old for the workspace; rustup brings a current one.
    echo "deps: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# Everything the project needs, plus any extra Debian packages given as arguments.
# shellcheck disable=SC2120 # the arguments are optional
r58_deps() {
  r58_install_packages "${R58_DEBIAN_PACKAGES[@]}" "$@"
  r58_ensure_rust
}

# Writes a local Mosquitto config to stdout, the one the tests use (r58_testkit::LocalBroker
# through r58-broker-conf): the production fleet/deploy/mosquitto.conf with the listener on
# 127.0.0.1:PORT, certificates (and the revocation list) from PKI (ca.pem, broker.crt/.key as
# `r58-fleet pki init` makes them), the authorization plugin built into target/broker-plugin,
# persistence and log in DIR, running as this user.
# Usage: r58_local_mosquitto_conf PORT PKI DIR [--replace LINE NEW]...
r58_local_mosquitto_conf() {
  local port="$1" pki="$2" dir="$3" repo
  shift 3
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  (cd "$repo" && cargo build --release --locked -q -p r58-testkit --bin r58-broker-conf) >&2
  USER=$(id -un) "$repo/target/release/r58-broker-conf" "$port" "$pki" "$dir" --log "$dir/mosquitto.log" "$@"
}
