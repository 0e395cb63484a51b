# fw_printenv / fw_setenv (used by RAUC's U-Boot backend) on the R58's redundant environment.
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://fw_env.config"

do_install:append:r58() {
    install -d ${D}${sysconfdir}
    install -m 0644 ${WORKDIR}/fw_env.config ${D}${sysconfdir}/fw_env.config
}
FILES:${PN}-bin:append:r58 = " ${sysconfdir}/fw_env.config"
