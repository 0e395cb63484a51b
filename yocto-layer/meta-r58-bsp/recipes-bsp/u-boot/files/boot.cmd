# R58 A/B boot with boot counting, the scheme RAUC's U-Boot backend uses:
# BOOT_ORDER lists the slots to try ("A B"); BOOT_x_LEFT counts the tries left for slot x.
# r58-health marks the booted slot good (BOOT_x_LEFT back to 3) on every boot; a slot whose
# tries run out is skipped, so a boot that never comes up falls back to the other slot.
# U-Boot runs this script from the "boot" partition (CONFIG_BOOTCOMMAND in r58-env.cfg).
#
# Hardware of the board: the build substitutes these (u-boot-rockchip.bbappend), and so
# does the virtual R58; nothing below them names a device, a console or a file of one board.
setenv r58_devtype "@R58_DEVTYPE@"
setenv r58_devnum "@R58_DEVNUM@"
setenv r58_kernel "@R58_KERNEL@"
setenv r58_fdtfile "@R58_FDTFILE@"
setenv r58_console "@R58_CONSOLE@"
setenv r58_boot '@R58_BOOT@'

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv r58_label
setenv raucslot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${r58_label}" != "x"; then
    # a slot is chosen already
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv r58_label rootfs_a
      setenv raucslot A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv r58_label rootfs_b
      setenv raucslot B
    fi
  fi
done

if test -n "${r58_label}"; then
  # Written to both redundant environment copies (fw_env.config): a power cut here cannot
  # lose the counters.
  saveenv
else
  echo "No bootable slot left: resetting the counters and retrying"
  setenv BOOT_ORDER "A B"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

# The slot's partition by its GPT label (r58.wks), so no partition number is written twice.
part number ${r58_devtype} ${r58_devnum} ${r58_label} r58_part || reset
# panic=10: a kernel (or initramfs) that cannot bring the root up resets after 10 s, and
# the try counts against the slot. init= named: a root without it is a kernel panic too,
# where the kernel would otherwise fall back to /bin/sh and wait there for ever.
setenv bootargs "root=PARTLABEL=${r58_label} rootfstype=ext4 ro rootwait panic=10 init=/sbin/init rauc.slot=${raucslot} console=${r58_console}"
# The box's machine id, the same for both slots and across updates (r58-machine-id.service
# keeps the first boot's here).
if test -n "${r58_machine_id}"; then
  setenv bootargs "${bootargs} systemd.machine_id=${r58_machine_id}"
fi
echo "R58: booting slot ${raucslot} (${r58_label}, partition ${r58_part}); tries left A=${BOOT_A_LEFT} B=${BOOT_B_LEFT}"
# A slot whose kernel or device tree does not load is a failed try: reset, and the counter
# (already saved) moves on to the other slot once this one's tries are used up.
load ${r58_devtype} ${r58_devnum}:${r58_part} ${kernel_addr_r} /boot/${r58_kernel} || reset
if test "x${r58_fdtfile}" != "x"; then
  load ${r58_devtype} ${r58_devnum}:${r58_part} ${fdt_addr_r} /boot/${r58_fdtfile} || reset
fi
run r58_boot
reset
