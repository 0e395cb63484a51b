# Persistent journal on the data partition, capped so that it cannot fill it.
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://10-r58-journal.conf"

do_install:append:r58() {
    install -d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${WORKDIR}/10-r58-journal.conf ${D}${systemd_unitdir}/journald.conf.d/
}
FILES:${PN}:append:r58 = " ${systemd_unitdir}/journald.conf.d/10-r58-journal.conf"
