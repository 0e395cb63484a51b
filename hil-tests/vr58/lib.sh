# Shared by the virtual R58's scripts (sourced): its boot script and its disk, made from the
# image's own files so that what boots here is what boots on the R58.
# shellcheck shell=bash

vr58_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vr58_bsp=$vr58_repo/yocto-layer/meta-r58-bsp

# The virtual board's hardware, in the variables boot.cmd leaves to the build
# (u-boot-rockchip.bbappend substitutes the R58's): the SD card on sdhci-pci is mmc 0, the
# kernel a bzImage with an initramfs (Debian's kernel has the SD driver as a module), no
# device tree, the serial console, and U-Boot's x86 boot command.
VR58_DEVTYPE=mmc
VR58_DEVNUM=0
VR58_KERNEL=vmlinuz
VR58_FDTFILE=
VR58_CONSOLE=ttyS0,115200
# shellcheck disable=SC2016 # U-Boot expands these when it runs the command
VR58_BOOT='load ${r58_devtype} ${r58_devnum}:${r58_part} ${ramdisk_addr_r} /boot/initrd.img && zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}'

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

# vr58_partitions: "label fstype" per partition of r58.wks, in order (the source of truth).
vr58_partitions() {
  python3 - "$vr58_bsp/wic/r58.wks" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0]
    if line.startswith("part ") and "--no-table" not in line:
        label = re.search(r"--label (\S+)", line).group(1)
        fstype = re.search(r"--fstype=(\S+)", line).group(1)
        print(label, fstype)
PY
}

# vr58_fw_env_config DISK OUT: the image's fw_env.config with the eMMC replaced by DISK.
vr58_fw_env_config() {
  sed "s|^/dev/mmcblk0 |$1 |" "$vr58_bsp/recipes-bsp/libubootenv/files/fw_env.config" > "$2"
}

# vr58_disk OUT SIZE_MIB BOOT_DIR ROOTFS_A_DIR ROOTFS_B_DIR [DATA_DIR]: a GPT disk with the
# partitions of r58.wks (labels, order, file systems; the data partition's "srv" type) after
# the raw area that holds the loaders and the environment (the first 16 MiB), each file
# system made from a folder. Sizes are the virtual R58's (the data partition takes the rest).
vr58_disk() {
  local out=$1 size_mib=$2 boot=$3 rootfs_a=$4 rootfs_b=$5 data=${6:-}
  local tmp start=16 label fstype mib dir script=""
  tmp=$(mktemp -d)
  # The partition table first, then each file system written at its offset.
  truncate -s 0 "$out"; truncate -s "${size_mib}M" "$out"
  declare -A sizes=([boot]=32 [rootfs_a]=96 [rootfs_b]=96)
  declare -A dirs=([boot]=$boot [rootfs_a]=$rootfs_a [rootfs_b]=$rootfs_b [data]=$data)
  local -a parts=()
  while read -r label fstype; do parts+=("$label:$fstype"); done < <(vr58_partitions)
  local s=$start p
  for p in "${parts[@]}"; do
    label=${p%%:*}; fstype=${p#*:}
    mib=${sizes[$label]:-$((size_mib - s - 1))}
    local type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
    [ "$fstype" = vfat ] && type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
    [ "$label" = data ] && type=3B8F8425-20E0-4F3B-907F-1A25A76F98E8
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
