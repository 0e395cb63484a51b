# R58 A/B boot with boot counting, the scheme RAUC's U-Boot backend uses:
# BOOT_ORDER lists the slots to try ("A B"); BOOT_x_LEFT counts the tries left for slot x.
# RAUC marks a slot good (resets BOOT_x_LEFT) after the health check; a slot whose tries
# run out is skipped, so a boot that never comes up falls back to the other slot.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv bootpart
setenv raucslot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootpart}" != "x"; then
    # a slot is chosen already
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv bootpart "PARTLABEL=rootfs_a"
      setenv bootdev 5
      setenv raucslot "A"
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv bootpart "PARTLABEL=rootfs_b"
      setenv bootdev 6
      setenv raucslot "B"
    fi
  fi
done

if test -n "${bootpart}"; then
  # Written to both redundant environment copies (fw_env.config): a power cut here cannot
  # lose the counters.
  saveenv
else
  echo "No bootable slot left: resetting the counters and retrying"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

setenv bootargs "root=${bootpart} rootfstype=ext4 ro rootwait rauc.slot=${raucslot} console=ttyFIQ0,1500000n8"
load mmc 0:${bootdev} ${kernel_addr_r} /boot/Image
load mmc 0:${bootdev} ${fdt_addr_r} /boot/${fdtfile}
booti ${kernel_addr_r} - ${fdt_addr_r}
