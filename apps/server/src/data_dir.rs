//! The data directory of the embedded default: what a single node keeps across restarts
//! besides its database, today the JWT secret, so identities outlive the process.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file, inside the data directory, holding the generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// The secret in `dir`'s [`JWT_SECRET_FILE`], made there (random, 256 bits, as hex, readable by
/// the owner only) on first use. `dir` is created when missing (readable by the owner only).
///
/// Errors: the directory or file cannot be created or read, or the file is empty.
pub fn jwt_secret(dir: &Path) -> io::Result<Vec<u8>> {
    create_private_dir(dir)?;
    let path = dir.join(JWT_SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let secret: String = rtchat_jwt::JwtTokens::generate_secret()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let mut file = private_file(&path)?;
            file.write_all(secret.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "made a JWT secret for this data directory");
            Ok(secret.into_bytes())
        }
        Err(error) => Err(error),
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A new file only its owner may read (fails if it exists: two nodes racing keep the first).
fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let first = jwt_secret(&data).expect("made");
        assert_eq!(first.len(), 64, "256 bits as hex");
        assert_eq!(jwt_secret(&data).expect("read back"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join(JWT_SECRET_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner may read the secret");
        }
        let other = tempfile::tempdir().expect("temp dir");
        assert_ne!(jwt_secret(other.path()).expect("made"), first);
    }

    #[test]
    fn an_empty_secret_file_is_an_error_not_a_weak_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(JWT_SECRET_FILE), "\n").expect("write");
        assert!(jwt_secret(dir.path()).is_err());
    }
}
