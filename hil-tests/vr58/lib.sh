# Shared by the virtual R58's scripts (sourced): its boot script and its disk, made from the
# image's own files so that what boots here is what boots on the R58.
# shellcheck shell=bash

vr58_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vr58_bsp=$vr58_repo/yocto-layer/meta-r58-bsp

# The virtual board's hardware, in the variables boot.cmd leaves to the build
# (u-boot-rockchip.bbappend substitutes the R58's): the SD card on sdhci-pci is mmc 0, the
# kernel a bzImage with an initramfs (Debian's kernel has the SD driver as a module), no
# device tree, the serial console, and U-Boot's x86 boot command (the initramfs loaded at
# 256 MiB, clear of where the kernel decompresses itself).
VR58_DEVTYPE=mmc
VR58_DEVNUM=0
VR58_KERNEL=vmlinuz
VR58_FDTFILE=
VR58_CONSOLE=ttyS0,115200
# shellcheck disable=SC2016 # U-Boot expands these when it runs the command
VR58_BOOT='setenv ramdisk_addr_r 0x10000000; load ${r58_devtype} ${r58_devnum}:${r58_part} ${ramdisk_addr_r} /boot/initrd.img && zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}'

# vr58_boot_scr OUT: boot.cmd with the virtual board's hardware, as a U-Boot script image.
vr58_boot_scr() {
  local out=$1
  # sed replacement text: '&', '|' and '\' literal.
  esc() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g'; }
  sed -e "s|@R58_DEVTYPE@|$(esc "$VR58_DEVTYPE")|" \
      -e "s|@R58_DEVNUM@|$(esc "$VR58_DEVNUM")|" \
      -e "s|@R58_KERNEL@|$(esc "$VR58_KERNEL")|" \
      -e "s|@R58_FDTFILE@|$(esc "$VR58_FDTFILE")|" \
      -e "s|@R58_CONSOLE@|$(esc "$VR58_CONSOLE")|" \
      -e "s|@R58_BOOT@|$(esc "$VR58_BOOT")|" \
      "$vr58_bsp/recipes-bsp/u-boot/files/boot.cmd" > "$out.cmd"
  if grep -q '@R58_' "$out.cmd"; then
    echo "vr58: boot.cmd has a hardware variable this script does not set: $(grep -o '@R58_[A-Z_]*@' "$out.cmd" | sort -u | tr '\n' ' ')" >&2
    return 1
  fi
  mkimage -A x86_64 -T script -C none -n "R58 A/B boot" -d "$out.cmd" "$out" >/dev/null
}

# vr58_partitions: "label fstype gpt-type" per partition of r58.wks, in order (the source of
# truth; the type is "-" when the wks leaves it to wic).
vr58_partitions() {
  python3 - "$vr58_bsp/wic/r58.wks" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0]
    if line.startswith("part ") and "--no-table" not in line:
        label = re.search(r"--label (\S+)", line).group(1)
        fstype = re.search(r"--fstype=(\S+)", line).group(1)
        ptype = re.search(r"--part-type[ =](\S+)", line)
        print(label, fstype, ptype.group(1) if ptype else "-")
PY
}

# vr58_partition_get DISK LABEL OUT / vr58_partition_put DISK LABEL IN: copies the bytes of
# the partition labelled LABEL out of the disk file, or back into it.
vr58_partition_get() { vr58_partition_copy get "$@"; }
vr58_partition_put() { vr58_partition_copy put "$@"; }
vr58_partition_copy() {
  python3 - "$@" <<'PY'
import json, subprocess, sys
way, disk, label, file = sys.argv[1:5]
table = json.loads(subprocess.check_output(["sfdisk", "--json", disk]))["partitiontable"]
part = next(p for p in table["partitions"] if p.get("name") == label)
if way == "get":
    args = [f"if={disk}", f"of={file}", f"skip={part['start']}", f"count={part['size']}"]
else:
    args = [f"if={file}", f"of={disk}", f"seek={part['start']}", "conv=notrunc"]
subprocess.run(["dd", "bs=512", "status=none", *args], check=True)
PY
}

# vr58_fw_env_config DISK OUT: the image's fw_env.config with the eMMC replaced by DISK.
vr58_fw_env_config() {
  sed "s|^/dev/mmcblk0 |$1 |" "$vr58_bsp/recipes-bsp/libubootenv/files/fw_env.config" > "$2"
}

# vr58_disk OUT SIZE_MIB BOOT_DIR ROOTFS_A_DIR ROOTFS_B_DIR [DATA_DIR]: a GPT disk with the
# partitions of r58.wks (labels, order, file systems, GPT types) after
# the raw area that holds the loaders and the environment (the first 16 MiB), each file
# system made from a folder (an empty ROOTFS_B_DIR: an empty file system, as flashed). Sizes
# are the virtual R58's: VR58_ROOTFS_MIB per slot (default 96), the data partition
# VR58_DATA_MIB or else the rest of the disk. SIZE_MIB must be a power of 2 (an SD card).
vr58_disk() {
  local out=$1 size_mib=$2 boot=$3 rootfs_a=$4 rootfs_b=$5 data=${6:-}
  local tmp start=16 label fstype mib dir script=""
  tmp=$(mktemp -d)
  # The partition table first, then each file system written at its offset.
  truncate -s 0 "$out"; truncate -s "${size_mib}M" "$out"
  declare -A sizes=([boot]=32 [rootfs_a]=${VR58_ROOTFS_MIB:-96} [rootfs_b]=${VR58_ROOTFS_MIB:-96})
  [ -z "${VR58_DATA_MIB:-}" ] || sizes[data]=$VR58_DATA_MIB
  declare -A dirs=([boot]=$boot [rootfs_a]=$rootfs_a [rootfs_b]=$rootfs_b [data]=$data)
  local -a parts=()
  while read -r label fstype ptype; do parts+=("$label:$fstype:$ptype"); done < <(vr58_partitions)
  local s=$start p
  for p in "${parts[@]}"; do
    IFS=: read -r label fstype ptype <<<"$p"
    mib=${sizes[$label]:-$((size_mib - s - 1))}
    # wic's defaults where the wks names no type: Linux data, or basic data for FAT.
    local type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
    [ "$fstype" = vfat ] && type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
    [ "$ptype" = - ] || type=$ptype
    script+="start=${s}MiB, size=${mib}MiB, type=$type, name=$label"$'\n'
    dir=${dirs[$label]:-}
    if [ "$fstype" = vfat ]; then
      mkfs.vfat -C -n "${label^^}" "$tmp/$label.img" $((mib * 1024)) >/dev/null
      if [ -n "$dir" ] && [ -n "$(ls -A "$dir")" ]; then mcopy -s -i "$tmp/$label.img" "$dir"/* ::/; fi
    else
      truncate -s "${mib}M" "$tmp/$label.img"
      mkfs.ext4 -q -F -L "$label" ${dir:+-d "$dir"} "$tmp/$label.img"
    fi
    dd if="$tmp/$label.img" of="$out" bs=1M seek="$s" conv=notrunc,sparse status=none
    s=$((s + mib))
  done
  printf 'label: gpt\nfirst-lba: 34\n%s' "$script" | sfdisk -q --no-reread --no-tell-kernel --wipe-partitions never "$out" >/dev/null
  rm -rf "$tmp"
}

# vr58_start DIR DISK HOSTFWDS...: powers the virtual R58 on in the background (pid in
# DIR/qemu.pid): U-Boot from the ROM, DISK as the SD card, a NIC on QEMU's user networking:
# the guest reaches this machine's loopback as 10.0.2.2, HOSTFWDS (hostfwd=... rules) reach
# the guest. Run it in a network namespace with nothing but loopback (hil-tests/run does),
# so that 10.0.2.2 is all the guest can reach.
# Serial console (ttyS0): DIR/serial.log; a root shell on ttyS1 for the harness
# (DIR/shell.sock, vr58_sh); monitor: DIR/monitor.sock. A reset reboots. The hardware
# watchdog is an i6300esb (the R58's is the RK3588's, built into its kernel): systemd keeps
# it (RuntimeWatchdogSec), and a system that stops feeding it is reset.
vr58_start() {
  local dir=$1 disk=$2 fwd
  shift 2
  fwd=$(IFS=,; echo "$*")
  qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -display none \
    -bios "$vr58_repo/target/vr58/u-boot/u-boot.rom" \
    -device sdhci-pci -drive if=none,id=sd,file="$disk",format=raw -device sd-card,drive=sd \
    -netdev "user,id=net0${fwd:+,$fwd}" -device virtio-net-pci,netdev=net0 \
    -device i6300esb -action watchdog=reset \
    -serial "file:$dir/serial.log" -serial "unix:$dir/shell.sock,server,nowait" \
    -monitor "unix:$dir/monitor.sock,server,nowait" \
    > "$dir/qemu.log" 2>&1 &
  echo $! > "$dir/qemu.pid"
}

# vr58_sh DIR COMMAND [TIMEOUT]: runs COMMAND in the guest's root shell (ttyS1) and prints
# its output; returns its exit status (124 when it did not finish within TIMEOUT, 30 s).
vr58_sh() {
  python3 - "$1/shell.sock" "$2" "${3:-30}" <<'PY'
import re, socket, sys, time
path, cmd, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.settimeout(0.5)
n = time.monotonic_ns()
# The output lies between two markers the command prints and its echoed text does not
# contain literally (the console echoes the line and may redraw it with the prompt).
begin, tag = f"R58BEGIN{n}\n", f"R58END{n}"
s.sendall(f"\nstty -echo 2>/dev/null; export PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb; "
          f"printf 'R58BEGIN%s\\n' {n}; {cmd}; echo {tag}:$?\n".encode())
buf, deadline = b"", time.monotonic() + limit
pat = re.compile(rf"{tag}:(\d+)".encode())
while time.monotonic() < deadline:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    buf += chunk
    m = pat.search(buf)
    if m:
        out = buf[:m.start()].decode(errors="replace").replace("\r", "")
        out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
        sys.stdout.write(out.split(begin, 1)[-1] if begin in out else out)
        sys.exit(int(m.group(1)))
sys.exit(124)
PY
}

# vr58_monitor DIR COMMAND: a QEMU monitor command (quit, system_reset, set_link ...).
vr58_monitor() {
  python3 - "$1/monitor.sock" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.3)
s.close()
PY
}

# vr58_stop DIR: power off now (the process this script started, by pid).
vr58_stop() {
  local pid
  pid=$(cat "$1/qemu.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1/qemu.pid"
}

# vr58_boots DIR: how many times U-Boot started (power-on and every reset) on the console.
vr58_boots() {
  grep -c "^U-Boot 20" "$1/serial.log" 2>/dev/null || true
}
