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

# The repository this recipe is part of (four folders up).
R58_CHECKOUT ??= "${@os.path.normpath(os.path.join(os.path.dirname(d.getVar('FILE')), '..', '..', '..', '..'))}"
# The firmware's own git repository: by default the checkout this layer is in, at its HEAD
# commit (uncommitted changes are not built). A release build may point both at the
# company's repository and a tag's commit; never AUTOREV: builds are reproducible.
R58_SRC_URI ??= "git://${R58_CHECKOUT};protocol=file;nobranch=1"
R58_SRCREV ??= "${@r58_checkout_head(d)}"
PV = "0.1.0+git"
SRC_URI = "${R58_SRC_URI}"
SRCREV = "${R58_SRCREV}"
S = "${WORKDIR}/git"

require r58-firmware-crates.inc

def r58_checkout_head(d):
    import subprocess
    try:
        return subprocess.check_output(["git", "-C", d.getVar("R58_CHECKOUT"), "rev-parse", "HEAD"],
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        bb.fatal("r58-firmware: %s is not a git checkout: set R58_SRC_URI and R58_SRCREV" % d.getVar("R58_CHECKOUT"))

inherit cargo cargo-update-recipe-crates features_check pkgconfig systemd useradd

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
    for unit in r58-recorder.service r58-agent.service r58-health.service r58-machine-id.service data.mount; do
        install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/$unit ${D}${systemd_system_unitdir}/
    done
    install -m 0644 ${S}/rootfs-overlay/etc/r58/r58.toml ${D}${sysconfdir}/r58/r58.toml
    install -m 0644 ${S}/rootfs-overlay/usr/lib/tmpfiles.d/r58.conf ${D}${nonarch_libdir}/tmpfiles.d/r58.conf
    install -m 0644 ${S}/rootfs-overlay/usr/lib/sysusers.d/r58.conf ${D}${nonarch_libdir}/sysusers.d/r58.conf
    install -m 0644 ${S}/rootfs-overlay/usr/share/polkit-1/rules.d/50-r58.rules ${D}${datadir}/polkit-1/rules.d/
    install -d ${D}${nonarch_base_libdir}/udev/rules.d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/udev/rules.d/60-r58-capture.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0644 ${S}/rootfs-overlay/usr/lib/udev/rules.d/60-r58-media.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/journald.conf.d/10-r58.conf ${D}${systemd_unitdir}/journald.conf.d/
    install -d ${D}${datadir}/dbus-1/system.d
    install -m 0644 ${S}/rootfs-overlay/usr/share/dbus-1/system.d/r58-rauc.conf ${D}${datadir}/dbus-1/system.d/
    install -d ${D}${nonarch_libdir}/modules-load.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/modules-load.d/r58-ota.conf ${D}${nonarch_libdir}/modules-load.d/
    install -d ${D}${nonarch_libdir}/repart.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/repart.d/50-data.conf ${D}${nonarch_libdir}/repart.d/
    install -d ${D}${systemd_unitdir}/system.conf.d ${D}${systemd_system_unitdir}/rauc.service.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system.conf.d/10-r58-watchdog.conf ${D}${systemd_unitdir}/system.conf.d/
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/rauc.service.d/10-r58-data.conf \
        ${D}${systemd_system_unitdir}/rauc.service.d/
    install -d ${D}${systemd_system_unitdir}/systemd-repart.service.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/systemd-repart.service.d/10-r58-keep-raw-area.conf \
        ${D}${systemd_system_unitdir}/systemd-repart.service.d/
    install -d ${D}${systemd_system_unitdir}/systemd-journal-flush.service.d
    install -m 0644 ${S}/rootfs-overlay/usr/lib/systemd/system/systemd-journal-flush.service.d/10-r58-data.conf \
        ${D}${systemd_system_unitdir}/systemd-journal-flush.service.d/
    # The data partition's mount point: the root file system is read-only at run time.
    install -d ${D}/data
    # conf.d lives on the data partition (the root file system is read-only).
    ln -sf /data/config/conf.d ${D}${sysconfdir}/r58/conf.d
}

PACKAGES =+ "${PN}-recorder ${PN}-agent ${PN}-config"
FILES:${PN}-recorder += "${bindir}/r58-recorder ${systemd_system_unitdir}/r58-recorder.service"
FILES:${PN}-agent += "${bindir}/r58-agent ${systemd_system_unitdir}/r58-agent.service \
                      ${systemd_system_unitdir}/r58-health.service ${datadir}/polkit-1/rules.d \
                      ${datadir}/dbus-1/system.d ${nonarch_libdir}/modules-load.d"
FILES:${PN}-config += "/data ${sysconfdir}/r58 ${nonarch_libdir}/tmpfiles.d ${nonarch_libdir}/sysusers.d \
                       ${systemd_system_unitdir}/data.mount ${nonarch_base_libdir}/udev/rules.d \
                       ${systemd_unitdir}/journald.conf.d ${nonarch_libdir}/repart.d \
                       ${systemd_unitdir}/system.conf.d ${systemd_system_unitdir}/rauc.service.d \
                       ${systemd_system_unitdir}/systemd-journal-flush.service.d \
                       ${systemd_system_unitdir}/systemd-repart.service.d \
                       ${systemd_system_unitdir}/r58-machine-id.service"
ALLOW_EMPTY:${PN} = "1"
RDEPENDS:${PN} = "${PN}-agent ${PN}-recorder"
RDEPENDS:${PN}-recorder = "${PN}-config \
                           gstreamer1.0-libav \
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
                           gstreamer1.0-plugins-good-audioparsers \
                           gstreamer1.0-plugins-good-multifile \
                           gstreamer1.0-plugins-good-rtp \
                           gstreamer1.0-plugins-good-rtpmanager \
                           gstreamer1.0-plugins-good-rtsp \
                           gstreamer1.0-plugins-good-udp \
                           gstreamer1.0-plugins-good-video4linux2 \
                           gstreamer1.0-rtsp-server \
                          "
RDEPENDS:${PN}-agent = "${PN}-config polkit systemd"
RDEPENDS:${PN}-config = "libubootenv-bin"
# These exist only with the r58 distro's PACKAGECONFIGs (srt, x264, the WebRTC set for
# guests) or on a Rockchip machine (MPP): recommended here so the recipe builds anywhere
# (world, other machines); the image installs them explicitly, so an r58 image without
# them fails to build.
RRECOMMENDS:${PN}-recorder = "gstreamer1.0-plugins-bad-srt gstreamer1.0-plugins-ugly-x264 gstreamer1.0-rockchip \
                              gstreamer1.0-plugins-bad-webrtc gstreamer1.0-plugins-bad-dtls \
                              gstreamer1.0-plugins-bad-srtp gstreamer1.0-plugins-bad-sctp \
                              gstreamer1.0-plugins-good-vpx gstreamer1.0-plugins-base-opus libnice"

SYSTEMD_PACKAGES = "${PN}-recorder ${PN}-agent ${PN}-config"
SYSTEMD_SERVICE:${PN}-config = "data.mount r58-machine-id.service"
SYSTEMD_SERVICE:${PN}-recorder = "r58-recorder.service"
SYSTEMD_SERVICE:${PN}-agent = "r58-agent.service r58-health.service"

# The users of usr/lib/sysusers.d/r58.conf, with its fixed ids, created in the image (the
# root file system is read-only at run time); yocto-layer/scripts/check-overlay compares them.
USERADD_PACKAGES = "${PN}-config"
GROUPADD_PARAM:${PN}-config = "--system --gid 580 r58; --system --gid 581 r58-recorder; --system --gid 582 r58-agent"
USERADD_PARAM:${PN}-config = "--system --uid 581 --gid 581 --home-dir /data/recordings --no-create-home \
                              --shell /sbin/nologin --groups r58,video,audio r58-recorder; \
                              --system --uid 582 --gid 582 --home-dir /data/agent --no-create-home \
                              --shell /sbin/nologin --groups r58,systemd-journal r58-agent"
