SUMMARY = "R58 appliance image (production): read-only A/B root, no package manager, no debug tools"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES = "read-only-rootfs"
IMAGE_LINGUAS = ""

IMAGE_INSTALL = " \
    packagegroup-core-boot \
    r58-firmware \
    rauc \
    libubootenv-bin \
    ca-certificates \
    tzdata \
    e2fsprogs-resize2fs \
"

# Production: nothing to log in with except the serial console in emergencies.
EXTRA_USERS_PARAMS ?= ""
