//! Layered configuration for every R58 service.
//!
//! Layers, later wins: built-in defaults → the main file (`/etc/r58/r58.toml`, or the
//! path in `R58_CONFIG`) → every `*.toml` in the `conf.d/` folder beside it, in byte order
//! of their names. Tables merge key by key; any other value replaces the earlier one.
//! Unknown keys and bad values are errors that name the file and the key.

mod error;
mod layers;
mod schema;

pub use error::ConfigError;
pub use layers::{
    load, load_from, load_with_drop_in, ConfigPaths, Loaded, CONFIG_ENV, DEFAULT_CONFIG_PATH,
};
pub use schema::*;
pub use toml::Table;
