# The vendor kernel's options the appliance needs: RAUC's verity bundles and HTTP streaming
# (dm-verity, nbd, squashfs, loop) and the hardware watchdog systemd keeps alive.
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://r58.cfg"
