//! Where a cluster's state lives: the validated `[state]` table.
//!
//! `backend = "local"` (the default) keeps today's `.cairn/<cluster>/`;
//! `"postgres"` keeps the journal as rows and the cluster lock as an
//! advisory lock in a PostgreSQL database. The connection URL is a secret
//! (it may hold a password): it is loaded at validation like every other
//! secret and only [`PgSettings::url`] exposes it, to the driver.
//!
//! `--state-url` (or `CAIRN_STATE_URL`) overrides the URL for one run (CI
//! keeps its database apart from what the Clusterfile says); the command
//! line hands it over once with [`set_url_override`], before any
//! Clusterfile is read.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::Secret;

/// The validated `[state]` table.
#[derive(Debug, Clone, Default)]
pub enum StateSettings {
    /// `.cairn/<cluster>/` beside the Clusterfile.
    #[default]
    Local,
    Postgres(PgSettings),
}

/// How to reach the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The connection URL (`postgres://…` or `host=… dbname=…`), a secret.
    pub url: Secret,
    /// The schema the tables live in; two schemas in one database never
    /// share a cluster or contend for a lock.
    pub schema: String,
    pub sslmode: SslMode,
    /// CA certificates (PEM) a `verify-*` mode trusts; the system's when absent.
    pub ca_file: Option<PathBuf>,
    /// How long an apply waits for the lock when `--lock-timeout` is not given.
    pub lock_timeout: Option<Duration>,
}

/// TLS to the server, as libpq names its modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise.
    #[default]
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the server's certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, signed by a trusted CA and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca, verify-full";

    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// The default schema.
pub const DEFAULT_SCHEMA: &str = "cairn";

/// Whether `name` can name a schema without quoting: lower-case letters,
/// digits and `_`, not starting with a digit, at most 63 bytes.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

static URL_OVERRIDE: OnceLock<Secret> = OnceLock::new();

/// `--state-url` / `CAIRN_STATE_URL` for this process: the URL of the
/// PostgreSQL backend, over the Clusterfile's (and choosing that backend
/// when the Clusterfile keeps state locally).
pub fn set_url_override(url: Secret) {
    let _ = URL_OVERRIDE.set(url);
}

/// The URL `--state-url` (or `CAIRN_STATE_URL`, `from_env`) gives:
/// `env:NAME` and `file:PATH` read as secrets are, else the URL itself —
/// which, on the command line, must hold no password (a process list
/// would show it). Errors are a message and a help, never quoting it.
pub fn url_from_argument(value: &str, from_env: bool) -> Result<Secret, (String, String)> {
    if value.starts_with("env:") || value.starts_with("file:") {
        let base = std::env::current_dir().unwrap_or_default();
        return super::load_secret(value, &base).map_err(|unloadable| {
            (
                format!("--state-url: {}", unloadable.message),
                unloadable.help,
            )
        });
    }
    if !from_env && password_of(value).is_some() {
        return Err((
            "--state-url holds a password, which any process list would show".into(),
            "put the URL in CAIRN_STATE_URL, or pass --state-url env:NAME or --state-url file:PATH"
                .into(),
        ));
    }
    Ok(Secret::new(value.to_string()))
}

/// The URL given with [`set_url_override`], if any.
pub fn url_override() -> Option<&'static Secret> {
    URL_OVERRIDE.get()
}

/// The URL's `sslmode` and `sslrootcert` (which the driver does not read
/// in their libpq forms) taken out: the URL for the driver, and them.
pub fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut root_cert) = (None, None);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(v.to_string()),
                Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (url, sslmode, root_cert);
    }
    // key=value form.
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => sslmode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
            _ => kept.push(word),
        }
    }
    (kept.join(" "), sslmode, root_cert)
}

/// Why a URL cannot be used, without echoing it (it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    let (rest, sslmode, _) = split_tls_params(url);
    if let Some(mode) = sslmode
        && SslMode::parse(&mode).is_none()
    {
        return Err(format!(
            "its sslmode `{mode}` is not one of {}",
            SslMode::NAMES
        ));
    }
    match rest.parse::<postgres::Config>() {
        Ok(config) if config.get_hosts().is_empty() => {
            Err("it names no host (give `host=` or `postgres://HOST/…`)".into())
        }
        Ok(_) => Ok(()),
        // The driver's message says what is wrong in general terms; it may
        // quote the URL, so it is scrubbed of it before being shown.
        Err(e) => Err(scrub(&e.to_string(), url)),
    }
}

/// `text` with the URL and any password in it replaced by `***`.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "***");
    if let Ok(config) = split_tls_params(url).0.parse::<postgres::Config>()
        && let Some(password) = config.get_password()
        && let Ok(password) = std::str::from_utf8(password)
        && !password.is_empty()
    {
        out = out.replace(password, "***");
    }
    out
}

/// The password a URL holds, if any: a secret to scrub from everything shown.
pub fn password_of(url: &str) -> Option<String> {
    let config = split_tls_params(url).0.parse::<postgres::Config>().ok()?;
    let password = std::str::from_utf8(config.get_password()?).ok()?;
    (!password.is_empty()).then(|| password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_come_out_of_both_url_forms() {
        let (url, mode, ca) =
            split_tls_params("postgres://u:p@db/x?sslmode=verify-full&sslrootcert=/ca.pem&a=b");
        assert_eq!(url, "postgres://u:p@db/x?a=b");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(ca.as_deref(), Some("/ca.pem"));
        let (url, mode, _) = split_tls_params("host=db sslmode=require dbname=x");
        assert_eq!(url, "host=db dbname=x");
        assert_eq!(mode.as_deref(), Some("require"));
    }

    #[test]
    fn a_bad_url_is_explained_without_its_password() {
        assert!(check_url("postgres://u:hunter2@db/x").is_ok());
        let err = check_url("postgres://u:hunter2@db/x?sslmode=sometimes").unwrap_err();
        assert!(err.contains("sslmode `sometimes`"), "{err}");
        let err = check_url("postgres://u:hunter2@db:notaport/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(
            password_of("postgres://u:hunter2@db/x").as_deref(),
            Some("hunter2")
        );
        assert!(
            !scrub(
                "failed for postgres://u:hunter2@db/x",
                "postgres://u:hunter2@db/x"
            )
            .contains("hunter2")
        );
    }
}
