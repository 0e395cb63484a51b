# RAUC on the R58: the system configuration from ota/ and the keyring of the bundle
# signing CA (from the build's key store, as for the bundle).
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/files:"
SRC_URI:append:r58 = " file://system.conf"
RAUC_KEYRING_FILE:r58 = "${R58_KEYS_DIR}/ca.cert.pem"
