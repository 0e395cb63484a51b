# RAUC's configuration on the R58 (meta-rauc's rauc-conf recipe provides /etc/rauc): the
# system configuration of this repository's ota/rauc/system.conf (one copy for the image, the
# virtual R58 and the tests) and the keyring of the bundle signing CA from the build's key
# store (R58_KEYS_DIR, as for the bundle).
FILESEXTRAPATHS:prepend:r58 := "${THISDIR}/../../../../ota/rauc:${R58_KEYS_DIR}:"
RAUC_KEYRING_FILE:r58 = "ca.cert.pem"
