SUMMARY = "R58 update bundle (RAUC): the r58-image root file system, signed"
LICENSE = "MIT"

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "r58"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "R58 appliance ${DISTRO_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "r58-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing material comes from outside the layer (the build server's key store); the
# development key pair is made by ota/keys/make-dev-keys (docs/ota.md).
RAUC_KEY_FILE ?= "${R58_KEYS_DIR}/development-1.key.pem"
RAUC_CERT_FILE ?= "${R58_KEYS_DIR}/development-1.cert.pem"
