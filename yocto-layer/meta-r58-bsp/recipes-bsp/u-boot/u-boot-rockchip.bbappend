# The R58's A/B boot: the boot script (boot counting for RAUC) with the board's hardware
# variables substituted, and the configuration fragment that puts the redundant environment
# where fw_env.config says and runs the script at power-on, with the board header it selects.
DEPENDS:append:r58 = " u-boot-tools-native"
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://boot.cmd file://r58-env.cfg file://r58_rk3588.h"

# The board's hardware variables (R58_BOOT_*) come from the machine configuration.

do_configure:prepend:r58() {
    install -m 0644 ${WORKDIR}/r58_rk3588.h ${S}/include/configs/r58_rk3588.h
}

do_compile:append:r58() {
    sed -e 's|@R58_DEVTYPE@|${R58_BOOT_DEVTYPE}|' \
        -e 's|@R58_DEVNUM@|${R58_BOOT_DEVNUM}|' \
        -e 's|@R58_KERNEL@|${R58_BOOT_KERNEL}|' \
        -e 's|@R58_FDTFILE@|${@os.path.basename(d.getVar("R58_DEVICETREE"))}|' \
        -e 's|@R58_CONSOLE@|${R58_BOOT_CONSOLE}|' \
        -e 's|@R58_BOOT@|${R58_BOOT_BOOT}|' \
        ${WORKDIR}/boot.cmd > ${B}/boot.cmd
    if grep -q '@R58_' ${B}/boot.cmd; then
        bbfatal "boot.cmd: a hardware variable is not substituted"
    fi
    mkimage -A arm64 -T script -C none -n "R58 A/B boot" -d ${B}/boot.cmd ${B}/boot.scr
}

do_deploy:append:r58() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}
