use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::error::ConfigError;
use crate::schema::Validate;

/// Environment variable that overrides the main config file's path.
pub const CONFIG_ENV: &str = "R58_CONFIG";
/// Where the main config file lives on the appliance.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/r58/r58.toml";
const DEFAULTS: &str = "<built-in defaults>";

/// The files one load reads: the main file and the `conf.d` folder beside it.
#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub main: PathBuf,
    /// True when the path was asked for explicitly (env var or flag): then it must exist.
    pub required: bool,
}

impl ConfigPaths {
    /// `R58_CONFIG` if set, else `/etc/r58/r58.toml` (which may be absent: defaults apply).
    pub fn from_env() -> Self {
        Self::resolve(None, CONFIG_ENV, DEFAULT_CONFIG_PATH)
    }

    /// A service's main file: `flag` (`--config`) if given, else the variable `env` if set,
    /// else `default` (which may be absent: defaults apply). An explicit path must exist.
    pub fn resolve(flag: Option<PathBuf>, env: &str, default: &str) -> Self {
        if let Some(main) = flag {
            return Self {
                main,
                required: true,
            };
        }
        match std::env::var_os(env) {
            Some(p) if !p.is_empty() => Self {
                main: PathBuf::from(p),
                required: true,
            },
            _ => Self {
                main: PathBuf::from(default),
                required: false,
            },
        }
    }

    pub fn conf_d(&self) -> PathBuf {
        self.main
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("conf.d")
    }
}

/// A loaded configuration and the files it came from, in the order applied.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub config: T,
    pub files: Vec<PathBuf>,
}

/// Loads the configuration from the paths `R58_CONFIG` or the default name.
pub fn load<T: DeserializeOwned + Validate>() -> Result<Loaded<T>, ConfigError> {
    load_from(&ConfigPaths::from_env())
}

/// Loads built-in defaults, then the main file, then `conf.d/*.toml` sorted by name.
pub fn load_from<T: DeserializeOwned + Validate>(
    paths: &ConfigPaths,
) -> Result<Loaded<T>, ConfigError> {
    load_replacing(paths, None)
}

/// Like [`load_from`], with the drop-in `conf.d/<name>` taken from `layer` instead of the
/// disk (added if absent): checks a layer before it is written (the agent's remote config).
pub fn load_with_drop_in<T: DeserializeOwned + Validate>(
    paths: &ConfigPaths,
    name: &str,
    layer: &Table,
) -> Result<Loaded<T>, ConfigError> {
    load_replacing(paths, Some((paths.conf_d().join(name), layer)))
}

fn load_replacing<T: DeserializeOwned + Validate>(
    paths: &ConfigPaths,
    replacement: Option<(PathBuf, &Table)>,
) -> Result<Loaded<T>, ConfigError> {
    let mut files = Vec::new();
    match std::fs::metadata(&paths.main) {
        Ok(_) => files.push(paths.main.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !paths.required => {}
        Err(source) => {
            return Err(ConfigError::Read {
                path: paths.main.clone(),
                source,
            })
        }
    }
    let mut drop_ins = drop_in_files(&paths.conf_d())?;
    if let Some((path, _)) = &replacement {
        if !drop_ins.contains(path) {
            drop_ins.push(path.clone());
            drop_ins.sort();
        }
    }
    files.extend(drop_ins);

    let mut merged = Table::new();
    let mut origins = BTreeMap::new();
    // Deserialize after every layer so that an error is blamed on the file that caused it.
    let mut config: T = deserialize(&merged, DEFAULTS)?;
    for file in &files {
        let layer = match &replacement {
            Some((path, table)) if path == file => (*table).clone(),
            _ => read_layer(file)?,
        };
        let name = file.display().to_string();
        merge(&mut merged, layer, &name, "", &mut origins);
        config = deserialize(&merged, &name)?;
    }
    if let Some((key, reason)) = config.validate().into_iter().next() {
        let file = origin_of(&origins, &key).unwrap_or(DEFAULTS).to_string();
        return Err(ConfigError::Invalid { file, key, reason });
    }
    Ok(Loaded { config, files })
}

fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::ListDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::ListDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if is_toml && !hidden && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn read_layer(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

fn deserialize<T: DeserializeOwned>(merged: &Table, file: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(Value::Table(merged.clone())).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            file: file.to_string(),
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            reason: e.into_inner().to_string().trim().to_string(),
        }
    })
}

/// Merges `layer` into `base`; records for each leaf key which file set it last.
fn merge(
    base: &mut Table,
    layer: Table,
    file: &str,
    prefix: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in layer {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(l)) => merge(b, l, file, &path, origins),
            (_, value) => {
                origins.retain(|k, _| !(k == &path || k.starts_with(&format!("{path}."))));
                origins.insert(path, file.to_string());
                base.insert(key, value);
            }
        }
    }
}

/// The file that set `key` or its nearest parent.
fn origin_of<'a>(origins: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    let mut k = key;
    loop {
        if let Some(f) = origins.get(k) {
            return Some(f);
        }
        // A table key set as a whole, or any child of it.
        if let Some((_, f)) = origins
            .iter()
            .find(|(o, _)| o.starts_with(&format!("{k}.")))
        {
            return Some(f);
        }
        k = k.rsplit_once('.')?.0;
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_variable_and_the_default_may_be_absent() {
        const VAR: &str = "R58_CONFIG_RESOLVE_TEST";
        std::env::set_var(VAR, "/from/env.toml");
        let p = ConfigPaths::resolve(Some("/from/flag.toml".into()), VAR, "/default.toml");
        assert_eq!(
            (p.main.to_str(), p.required),
            (Some("/from/flag.toml"), true)
        );
        let p = ConfigPaths::resolve(None, VAR, "/default.toml");
        assert_eq!(
            (p.main.to_str(), p.required),
            (Some("/from/env.toml"), true)
        );
        std::env::set_var(VAR, "");
        let p = ConfigPaths::resolve(None, VAR, "/default.toml");
        assert_eq!(
            (p.main.to_str(), p.required),
            (Some("/default.toml"), false)
        );
        std::env::remove_var(VAR);
    }
}
