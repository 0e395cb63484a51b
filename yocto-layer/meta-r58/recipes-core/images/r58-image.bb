SUMMARY = "R58 appliance image (production)"
DESCRIPTION = "Read-only A/B root file system for the R58: recorder, agent, RAUC; \
               no package manager, no shell access beyond the serial console, no debug tools."
HOMEPAGE = "https://git.example.com/r58/firmware"
BUGTRACKER = "https://git.example.com/r58/firmware/issues"
SECTION = "images"
LICENSE = "MIT"

require r58-image.inc
