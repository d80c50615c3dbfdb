//! The hosted API a client talks to, and the login `catty login` leaves:
//! `$XDG_CONFIG_HOME/catty/credentials.json` (else `~/.config/catty/`), directory 0700, file
//! 0600, replaced atomically (a temp file renamed over it). It holds the API's URL, the token
//! and the email. `CATTY_API_URL` chooses the API and `CATTY_TOKEN` the token (CI); the file's
//! token is only ever sent to the URL it was minted by.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Env, UsageError};

/// The file's contents.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFile {
    pub api_url: String,
    pub token: String,
    #[serde(default)]
    pub email: Option<String>,
}

impl std::fmt::Debug for LoginFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFile")
            .field("api_url", &self.api_url)
            .field("token", &"<secret>")
            .field("email", &self.email)
            .finish()
    }
}

/// The largest file read: a URL, a token and an email.
const FILE_LIMIT_BYTES: u64 = 64 * 1024;

/// Where the file is.
pub(super) fn path(env: &Env) -> Option<PathBuf> {
    let dir = match (env.non_empty("XDG_CONFIG_HOME"), env.non_empty("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => PathBuf::from(home).join(".config"),
        (None, None) => return None,
    };
    Some(dir.join("catty").join("credentials.json"))
}

impl LoginFile {
    /// The file's login; none when there is no file.
    pub fn read(path: &Path) -> anyhow::Result<Option<LoginFile>> {
        use std::io::Read;
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut text = String::new();
        (file.take(FILE_LIMIT_BYTES).read_to_string(&mut text))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let login = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a catty login (remove it and run catty login)",
                path.display()
            )
        })?;
        Ok(Some(login))
    }

    /// Writes the file: its directory 0700, the file 0600 from its first byte, renamed into
    /// place, so a reader sees the old login or the new one, never half of one.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("the login file has no directory")?;
        let write = || -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".credentials.")
                .tempfile_in(dir)?;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
            serde_json::to_writer_pretty(&mut tmp, self)?;
            writeln!(tmp)?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }

    /// Removes the file; fine when there is none.
    pub fn remove(path: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// A hosted API's base URL: `https://HOST[:PORT]`, or `http://` on loopback only (a token
/// never crosses a network in the clear). A trailing `/` is dropped.
pub fn api_url(text: &str) -> Result<String, UsageError> {
    let url = text.trim().trim_end_matches('/');
    let bad = |why: &str| UsageError(format!("the API URL {text:?} {why}"));
    let (tls, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err(bad("must start with https://")),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad("must be https://HOST[:PORT], with no path"));
    }
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    let loopback = ["127.0.0.1", "localhost", "[::1]"].contains(&host);
    if !tls && !loopback {
        return Err(bad("must be https:// (plain http only on this computer)"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        assert_eq!(
            api_url("https://api.catty.dev/").unwrap(),
            "https://api.catty.dev"
        );
        assert_eq!(
            api_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "api.catty.dev",
            "http://api.catty.dev",
            "https://",
            "https://a/b",
            "ftp://a",
        ] {
            assert!(api_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let home = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(&[("HOME", home.path().to_str().unwrap())]);
        let path = path(&env).unwrap();
        assert!(path.ends_with(".config/catty/credentials.json"));
        let login = LoginFile {
            api_url: "https://api.example".into(),
            token: "cat_s3cret".into(),
            email: Some("a@example.com".into()),
        };
        login.write(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(LoginFile::read(&path).unwrap(), Some(login.clone()));
        assert!(!format!("{login:?}").contains("s3cret"));
        LoginFile::remove(&path).unwrap();
        LoginFile::remove(&path).unwrap();
        assert_eq!(LoginFile::read(&path).unwrap(), None);
    }
}
