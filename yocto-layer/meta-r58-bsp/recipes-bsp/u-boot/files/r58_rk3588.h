/* SPDX-License-Identifier: GPL-2.0+ */
/*
 * The R58's U-Boot board configuration: the vendor RK3588 board's, plus what the A/B boot
 * needs that the vendor U-Boot (2017.09) takes from the board header rather than Kconfig:
 * the redundant environment's second copy and the power-on command. r58-env.cfg selects
 * this header (CONFIG_SYS_CONFIG_NAME) and sets the Kconfig half: environment in MMC at
 * CONFIG_ENV_OFFSET, CONFIG_ENV_SIZE, setexpr and part. fw_env.config (libubootenv, RAUC's
 * U-Boot backend) names the same two copies; yocto-layer/scripts/check-layout compares them.
 */
#ifndef __CONFIGS_R58_RK3588_H
#define __CONFIGS_R58_RK3588_H

#include <configs/evb_rk3588.h>

#define CONFIG_SYS_REDUNDAND_ENVIRONMENT
#define CONFIG_ENV_OFFSET_REDUND	0xC20000
#undef CONFIG_SYS_MMC_ENV_DEV
#define CONFIG_SYS_MMC_ENV_DEV		0

#ifndef CONFIG_SPL_BUILD
/* Power-on: the A/B script from the partition labelled "boot"; if it cannot run, reset. */
#undef CONFIG_BOOTCOMMAND
#define CONFIG_BOOTCOMMAND "part number mmc 0 boot r58_bootpart && load mmc 0:${r58_bootpart} ${scriptaddr} boot.scr && source ${scriptaddr}; reset"
#endif

#endif
