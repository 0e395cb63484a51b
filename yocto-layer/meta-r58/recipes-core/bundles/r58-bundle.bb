SUMMARY = "R58 update bundle (RAUC)"
DESCRIPTION = "The r58-image root file system as a signed RAUC bundle (verity format) for A/B updates."
HOMEPAGE = "https://git.example.com/r58/firmware"
BUGTRACKER = "https://git.example.com/r58/firmware/issues"
SECTION = "images"
LICENSE = "MIT"

# A bundle takes its payload from the image; it has no sources of its own.
SRC_URI = ""

inherit bundle features_check

# Skipped outside the r58 distro, like the image it packs.
REQUIRED_DISTRO_FEATURES = "systemd rauc"

RAUC_BUNDLE_COMPATIBLE = "r58"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "R58 appliance ${DISTRO_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "r58-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing material comes from outside the layer: the build server's key store, or the
# development pair made by ota/keys/make-dev-keys (docs/ota.md).
R58_KEYS_DIR ??= "${TOPDIR}/r58-keys"
RAUC_KEY_FILE ?= "${R58_KEYS_DIR}/signing.key.pem"
RAUC_CERT_FILE ?= "${R58_KEYS_DIR}/signing.cert.pem"
