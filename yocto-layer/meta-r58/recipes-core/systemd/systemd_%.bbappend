# Persistent journal on the data partition, capped so it cannot fill it.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append = " file://10-r58-journal.conf"

do_install:append() {
    install -d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${WORKDIR}/10-r58-journal.conf ${D}${systemd_unitdir}/journald.conf.d/
}
FILES:${PN}:append = " ${systemd_unitdir}/journald.conf.d/10-r58-journal.conf"
