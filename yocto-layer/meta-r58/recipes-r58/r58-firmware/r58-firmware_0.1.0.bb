SUMMARY = "R58 firmware services: recorder and MQTT agent"
DESCRIPTION = "Capture, encode, crash-safe recording, RTSP/HLS and TURN credentials (r58-recorder), \
               and the fleet agent (r58-agent), with their systemd units and default configuration."
HOMEPAGE = "https://git.example.com/r58/firmware"
BUGTRACKER = "https://git.example.com/r58/firmware/issues"
SECTION = "multimedia"
CVE_PRODUCT = "r58-firmware"
# The product's own code; the crates it vendors keep their licenses (see the crates.inc).
LICENSE = "CLOSED"

DEPENDS += "gstreamer1.0 \
            gstreamer1.0-plugins-bad \
            gstreamer1.0-plugins-base \
            gstreamer1.0-rtsp-server \
           "

# The firmware's own git repository. kas points R58_SRC_URI at the checkout it builds from
# and sets R58_SRCREV to the commit (no AUTOREV: builds are reproducible).
R58_SRC_URI ??= "git://git.example.com/r58/firmware.git;protocol=https;branch=main"
R58_SRCREV ??= "0000000000000000000000000000000000000000"
PV = "0.1.0+git"
SRC_URI = "${R58_SRC_URI}"
SRCREV = "${R58_SRCREV}"
S = "${WORKDIR}/git"

require r58-firmware-crates.inc

inherit cargo cargo-update-recipe-crates features_check systemd useradd

# The services are systemd units (Type=notify, watchdog, sysusers); without systemd the
# recipe is skipped rather than broken.
REQUIRED_DISTRO_FEATURES = "systemd"

CARGO_BUILD_FLAGS += "--bins --package r58-recorder --package r58-agent"

# The cargo class installs every built artifact of the workspace (rlibs included): install
# exactly the two service binaries instead.
do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/r58-recorder ${D}${bindir}/r58-recorder
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/r58-agent ${D}${bindir}/r58-agent

    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/r58 ${D}${nonarch_libdir}/tmpfiles.d \
        ${D}${nonarch_libdir}/sysusers.d ${D}${datadir}/polkit-1/rules.d ${D}${sysconfdir}/r58/pki
    for unit in r58-recorder.service r58-agent.service r58-health.service data.mount; do
        install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/$unit ${D}${systemd_system_unitdir}/
    done
    install -m 0644 ${S}/rootfs-overlay/etc/r58/r58.toml ${D}${sysconfdir}/r58/r58.toml
    install -m 0644 ${S}/rootfs-overlay/usr/lib/tmpfiles.d/r58.conf ${D}${nonarch_libdir}/tmpfiles.d/r58.conf
    install -m 0644 ${S}/rootfs-overlay/usr/lib/sysusers.d/r58.conf ${D}${nonarch_libdir}/sysusers.d/r58.conf
    install -m 0644 ${S}/rootfs-overlay/usr/share/polkit-1/rules.d/50-r58.rules ${D}${datadir}/polkit-1/rules.d/
    install -d ${D}${nonarch_base_libdir}/udev/rules.d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/udev/rules.d/60-r58-capture.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/journald.conf.d/10-r58.conf ${D}${systemd_unitdir}/journald.conf.d/
    install -d ${D}${datadir}/dbus-1/system.d
    install -m 0644 ${S}/rootfs-overlay/usr/share/dbus-1/system.d/r58-rauc.conf ${D}${datadir}/dbus-1/system.d/
    install -d ${D}${nonarch_libdir}/repart.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/repart.d/50-data.conf ${D}${nonarch_libdir}/repart.d/
    # conf.d lives on the data partition (the root file system is read-only).
    ln -sf /data/config/conf.d ${D}${sysconfdir}/r58/conf.d
}

PACKAGES =+ "${PN}-recorder ${PN}-agent ${PN}-config"
FILES:${PN}-recorder += "${bindir}/r58-recorder ${systemd_system_unitdir}/r58-recorder.service"
FILES:${PN}-agent += "${bindir}/r58-agent ${systemd_system_unitdir}/r58-agent.service \
                      ${systemd_system_unitdir}/r58-health.service ${datadir}/polkit-1/rules.d \
                      ${datadir}/dbus-1/system.d"
FILES:${PN}-config += "${sysconfdir}/r58 ${nonarch_libdir}/tmpfiles.d ${nonarch_libdir}/sysusers.d \
                       ${systemd_system_unitdir}/data.mount ${nonarch_base_libdir}/udev/rules.d \
                       ${systemd_unitdir}/journald.conf.d ${nonarch_libdir}/repart.d"
ALLOW_EMPTY:${PN} = "1"
RDEPENDS:${PN} = "${PN}-agent ${PN}-recorder"
RDEPENDS:${PN}-recorder = "${PN}-config \
                           gstreamer1.0-libav \
                           gstreamer1.0-plugins-bad-audioparsers \
                           gstreamer1.0-plugins-bad-hls \
                           gstreamer1.0-plugins-bad-mpegtsmux \
                           gstreamer1.0-plugins-bad-videoparsersbad \
                           gstreamer1.0-plugins-base-alsa \
                           gstreamer1.0-plugins-base-app \
                           gstreamer1.0-plugins-base-audioconvert \
                           gstreamer1.0-plugins-base-audiomixer \
                           gstreamer1.0-plugins-base-audioresample \
                           gstreamer1.0-plugins-base-audiotestsrc \
                           gstreamer1.0-plugins-base-pango \
                           gstreamer1.0-plugins-base-playback \
                           gstreamer1.0-plugins-base-videoconvertscale \
                           gstreamer1.0-plugins-base-videorate \
                           gstreamer1.0-plugins-base-videotestsrc \
                           gstreamer1.0-plugins-good-multifile \
                           gstreamer1.0-plugins-good-rtp \
                           gstreamer1.0-plugins-good-rtpmanager \
                           gstreamer1.0-plugins-good-rtsp \
                           gstreamer1.0-plugins-good-udp \
                           gstreamer1.0-plugins-good-video4linux2 \
                           gstreamer1.0-rtsp-server \
                          "
RDEPENDS:${PN}-agent = "${PN}-config polkit systemd"
# These exist only with the r58 distro's PACKAGECONFIGs (srt, x264) or on a Rockchip machine
# (MPP): recommended here so the recipe builds anywhere (world, other machines); the image
# installs them explicitly, so an r58 image without them fails to build.
RRECOMMENDS:${PN}-recorder = "gstreamer1.0-plugins-bad-srt gstreamer1.0-plugins-ugly-x264 gstreamer1.0-rockchip"

SYSTEMD_PACKAGES = "${PN}-recorder ${PN}-agent"
SYSTEMD_SERVICE:${PN}-recorder = "r58-recorder.service"
SYSTEMD_SERVICE:${PN}-agent = "r58-agent.service r58-health.service"

USERADD_PACKAGES = "${PN}-config"
USERADD_PARAM:${PN}-config = "--system --home-dir /data --no-create-home --shell /sbin/nologin \
                              --groups video,audio,systemd-journal --user-group r58"
