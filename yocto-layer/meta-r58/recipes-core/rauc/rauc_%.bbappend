# RAUC on the R58: the system configuration and keyring from ota/ (copied into files/ by
# yocto-layer/scripts/sync-ota, checked in CI).
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append = " file://system.conf file://ca.cert.pem"

RAUC_KEYRING_FILE = "ca.cert.pem"
