SUMMARY = "R58 development image: the appliance plus SSH and debugging tools"
LICENSE = "MIT"

require r58-image.bb

IMAGE_FEATURES += "ssh-server-openssh debug-tweaks tools-debug"
IMAGE_INSTALL += " \
    gstreamer1.0-plugins-base-meta \
    gstreamer1.0-plugins-good-meta \
    gstreamer1.0-plugins-bad-meta \
    v4l-utils \
    alsa-utils \
    mosquitto-clients \
    htop \
    strace \
"
