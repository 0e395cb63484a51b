SUMMARY = "R58 development image"
DESCRIPTION = "The R58 appliance image plus SSH and the tools to debug capture, encoding and the network."
HOMEPAGE = "https://git.example.com/r58/firmware"
BUGTRACKER = "https://git.example.com/r58/firmware/issues"
SECTION = "images"
LICENSE = "MIT"

require r58-image.inc

# This image exists to have them; the production image (r58-image.bb) has neither.
# nooelint: oelint.var.badimagefeature.debug-tweaks,oelint.var.badimagefeature.tools-debug
IMAGE_FEATURES += "ssh-server-openssh debug-tweaks tools-debug"
IMAGE_INSTALL += "alsa-utils \
                  gstreamer1.0-plugins-bad-meta \
                  gstreamer1.0-plugins-base-meta \
                  gstreamer1.0-plugins-good-meta \
                  htop \
                  mosquitto-clients \
                  strace \
                  v4l-utils \
                 "
