# The R58's A/B boot script (boot counting for RAUC) and a redundant environment.
DEPENDS:append:r58 = " u-boot-tools-native"
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://boot.cmd"

do_compile:append:r58() {
    mkimage -A arm64 -T script -C none -n "R58 A/B boot" -d ${WORKDIR}/boot.cmd ${B}/boot.scr
}

do_deploy:append:r58() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}
