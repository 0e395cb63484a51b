//! The operator CLI's arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The R58 fleet service and its operator CLI.
#[derive(Parser)]
#[command(name = "r58-fleet", version, about)]
pub(crate) struct Cli {
    /// Main config file of the server commands (default: $R58_FLEET_CONFIG or /etc/r58-fleet/fleet.toml).
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Args)]
pub(crate) struct Remote {
    /// The fleet server's URL.
    #[arg(long, env = "R58_FLEET_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// An operator token (made with `r58-fleet operator add`).
    #[arg(
        long,
        env = "R58_FLEET_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub(crate) token: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Cmd {
    /// Serve the fleet service (API, dashboard, ingest, TURN credentials).
    Serve,
    /// Load and validate the configuration.
    CheckConfig,
    /// Operator API tokens (server side: uses the configured database).
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// The CA for the broker's mutual TLS.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Add a device to the TURN registry or rotate its token; prints the token once.
    DeviceToken { id: String },
    /// Revoke a device's TURN token.
    DeviceRevoke { id: String },
    /// List devices.
    Devices {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Show one device with its recent commands.
    Device {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Forward a local port to a port of a box through its remote-access tunnel (admin;
    /// Ctrl-C to stop): `ssh -p <local-port> 127.0.0.1`, or a player on RTSP.
    Tunnel {
        device: String,
        /// The port to listen on, on this machine.
        local_port: u16,
        /// The box's port (it must be in the box's `remote_access.ports`).
        #[arg(default_value_t = 22)]
        box_port: u16,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show the fleet-wide remote-access switch, or turn it `on` or `off` (admin). Off: no
    /// box's UI, port forward or public guest path, and open sessions end.
    RemoteAccess {
        #[arg(value_parser = ["on", "off"])]
        set: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow a device's telemetry live (Ctrl-C to stop).
    Watch {
        id: String,
        #[command(flatten)]
        remote: Remote,
        /// Only this telemetry stream (system, network, recorder).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Send a command (`ping`, `record.start`, `record.stop`, `reboot`, …) and follow its progress.
    Cmd {
        id: String,
        name: String,
        /// Arguments as key=value (values parsed as JSON when they are).
        args: Vec<String>,
        #[arg(long)]
        timeout: Option<u32>,
        /// Return once sent.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// A device's desired and reported configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Updates: publish RAUC bundles and roll them out in waves.
    #[command(subcommand)]
    Ota(OtaCmd),
}

#[derive(Subcommand)]
pub(crate) enum OtaCmd {
    /// Upload a RAUC bundle; the server reads its version and compatible (and checks its signature).
    Publish {
        bundle: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List published bundles.
    Bundles {
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a rollout of a published version (waves: cumulative counts or percentages).
    Rollout {
        version: String,
        /// Every device.
        #[arg(long, conflicts_with_all = ["tag", "devices"])]
        all: bool,
        /// Devices with this tag.
        #[arg(long, conflicts_with = "devices")]
        tag: Option<String>,
        /// These devices (comma-separated).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// Waves, e.g. 1,10%,50%,100% (the default).
        #[arg(long, value_delimiter = ',')]
        waves: Vec<String>,
        /// Success rate a wave needs before the next starts.
        #[arg(long)]
        success_percent: Option<i64>,
        /// Halt when more than this share of started jobs failed.
        #[arg(long)]
        failure_percent: Option<i64>,
        /// A device silent this long in one phase counts as failed.
        #[arg(long)]
        step_timeout: Option<i64>,
        /// when_idle (default: never during a recording) or force.
        #[arg(long)]
        install_policy: Option<String>,
        /// when_idle (default), force or manual.
        #[arg(long)]
        reboot_policy: Option<String>,
        #[arg(long)]
        allow_downgrade: bool,
        /// Follow the rollout until it settles.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List rollouts.
    Rollouts {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a rollout; --watch follows it until it completes, halts or is aborted.
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pause a rollout: no new jobs, running ones go on.
    Pause {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a paused or halted rollout.
    Resume {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Abort a rollout: unstarted jobs are skipped, started ones withdrawn (unless installing).
    Abort {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub(crate) enum OperatorCmd {
    /// Add an operator (or replace its token and role); prints the token once.
    Add {
        name: String,
        /// viewer (reads), operator (also commands, desired config, tags) or admin (also
        /// bundles and rollouts).
        #[arg(long)]
        role: String,
    },
    /// Revoke an operator's token.
    Revoke { name: String },
    /// List operators.
    List,
}

#[derive(Subcommand)]
pub(crate) enum PkiCmd {
    /// Create the CA, the broker's server certificate and the fleet's client certificate.
    Init {
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// A name for this CA (e.g. the company).
        #[arg(long, default_value = "r58")]
        name: String,
        /// DNS names / IP addresses of the broker (repeat).
        #[arg(long = "broker-name", required = true)]
        broker_names: Vec<String>,
    },
    /// Issue a device certificate as a bundle for the box.
    IssueDevice {
        id: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        #[arg(long, default_value = "/data/fleet/bundles")]
        out: PathBuf,
        /// The broker URL the device connects to.
        #[arg(long)]
        broker: String,
    },
    /// Issue an operator's client certificate (for MQTT tools; name it in the broker's
    /// `plugin_opt_services` to give it the fleet's topics).
    IssueOperator {
        name: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        #[arg(long, default_value = "/data/fleet/bundles")]
        out: PathBuf,
    },
    /// Shut a device (or operator) certificate out of the broker: disconnected and refused
    /// within a second, without restarting the broker.
    Revoke {
        cn: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// Also put the list in the broker's certificate folder (see `pki deploy`).
        #[arg(long)]
        broker_certs: Option<PathBuf>,
    },
    /// The deployment's step before the services start: the CA and the service
    /// certificates if there are none yet (never replaced), then the broker's and the
    /// fleet's certificates (and the revocation list) copied into folders of their own, so
    /// that no running service mounts the CA key.
    Deploy {
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// A name for the CA, when one is made.
        #[arg(long, default_value = "r58")]
        name: String,
        /// DNS names / IP addresses of the broker, when the CA is made (repeat).
        #[arg(long = "broker-name")]
        broker_names: Vec<String>,
        #[arg(long)]
        broker_certs: PathBuf,
        #[arg(long)]
        fleet_certs: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Show desired and reported configuration.
    Get {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set desired settings (dotted r58.toml keys), merged into the current ones.
    Set {
        id: String,
        /// key=value pairs, e.g. recorder.segment_seconds=10
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Replace all desired settings instead of merging.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        remote: Remote,
    },
}
