//! The client's token: taken from `GET /init` and kept in a file (the user's config
//! directory, one file per server, or `--token-file`), so the same identity comes back.

use crate::error::CliError;
use crate::http::Api;
use std::path::{Path, PathBuf};

/// Where the token for `api`'s server is kept by default: `<config dir>/rtchat/token-<host>-<port>`.
pub fn default_path(api: &Api) -> Result<PathBuf, CliError> {
    let dirs = directories::ProjectDirs::from("", "", "rtchat").ok_or(CliError::NoConfigDir)?;
    let server: String = api
        .authority()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Ok(dirs.config_dir().join(format!("token-{server}")))
}

/// A valid token: the kept one if the server still takes it (or the renewed one it gives for
/// an expired one), else a new identity's; kept in `path` for next time.
pub async fn obtain(api: &Api, path: &Path) -> Result<String, CliError> {
    let kept = match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim().to_owned()).filter(|token| !token.is_empty()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(CliError::TokenFile {
                path: path.to_owned(),
                error,
            });
        }
    };
    let mut answer = api.get("/init", kept.as_deref()).await?;
    if kept.is_some() && answer.kind() == "INVALID_TOKEN" {
        // Kept from a server with another secret: start a new identity.
        answer = api.get("/init", None).await?;
    }
    let Some(token) = answer.body["response"].as_str() else {
        return Err(CliError::Refused {
            url: api.url("/init"),
            status: answer.status,
            message: answer.message(),
        });
    };
    if kept.as_deref() != Some(token) {
        save(path, token)?;
    }
    Ok(token.to_owned())
}

fn save(path: &Path, token: &str) -> Result<(), CliError> {
    let failed = |error| CliError::TokenFile {
        path: path.to_owned(),
        error,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // The token is the identity: readable by its owner only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(failed)
}
