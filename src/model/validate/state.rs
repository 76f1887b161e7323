//! `[state]`: where the cluster's state and lock live.
//!
//! A missing table is the local backend. `backend = "postgres"` needs a
//! `url`, a secret loaded here like any other (a missing one is reported at
//! the key), whose value is checked as a connection URL without ever being
//! quoted back: it may hold a password. `--state-url` / `CAIRN_STATE_URL`
//! stands in for the `url` (and chooses PostgreSQL).

use toml::Spanned;

use super::Validator;
use crate::clusterfile::raw::RawState;
use crate::diagnostic::Problem;
use crate::model::state_settings::{
    self as state_settings, DEFAULT_SCHEMA, PgSettings, SslMode, StateSettings, url_override,
    valid_schema,
};
use crate::model::{Secret, load_secret};

impl Validator<'_> {
    /// The `[state]` table, validated; the local backend when absent.
    pub(super) fn state_settings(&mut self, raw: Option<&RawState>) -> StateSettings {
        let default = RawState::default();
        let raw = raw.unwrap_or(&default);
        let overridden = url_override();
        let postgres = match raw
            .backend
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("local", _)) => overridden.is_some(),
            Some(("postgres", _)) => true,
            Some((other, span)) => {
                self.push(
                    Problem::at(span, format!("unknown state backend `{other}`"))
                        .label("not a backend")
                        .help(
                            "write `backend = \"local\"` (the default) or `backend = \"postgres\"`",
                        ),
                );
                return StateSettings::Local;
            }
        };
        if !postgres {
            return StateSettings::Local;
        }
        let url = match (overridden, &raw.url) {
            (Some(url), _) => self.state_url(url.clone(), None),
            (None, Some(url)) => {
                let reference = url.get_ref().reference();
                match load_secret(reference, &self.base_dir) {
                    Ok(secret) => self.state_url(secret, Some(url.span())),
                    Err(unloadable) => {
                        self.push(
                            Problem::at(
                                url.span(),
                                format!("secret state.url: {}", unloadable.message),
                            )
                            .label(unloadable.label)
                            .help(unloadable.help),
                        );
                        None
                    }
                }
            }
            (None, None) => {
                let span = raw.backend.as_ref().map_or(0..0, Spanned::span);
                self.push(
                    Problem::at(span, "the postgres state backend needs a `url`")
                        .label("no url for this backend")
                        .help("add `url = { secret = \"env:CAIRN_STATE_URL\" }` to [state] (a URL may hold a password, so it is a secret), or pass --state-url"),
                );
                None
            }
        };
        let schema = match &raw.schema {
            Some(schema) if !valid_schema(schema.get_ref()) => {
                self.push(
                    Problem::at(schema.span(), format!("invalid schema name `{}`", schema.get_ref()))
                        .label("not a plain schema name")
                        .help("use lower-case letters, digits and `_`, not starting with a digit (at most 63)"),
                );
                DEFAULT_SCHEMA.to_string()
            }
            Some(schema) => schema.get_ref().clone(),
            None => DEFAULT_SCHEMA.to_string(),
        };
        let (sslmode, ca_file) = self.state_tls(raw, url.as_ref());
        let lock_timeout = raw
            .lock_timeout
            .as_ref()
            .and_then(|d| self.duration(d, "state.lock_timeout"));
        match url {
            Some(url) => StateSettings::Postgres(PgSettings {
                url,
                schema,
                sslmode,
                ca_file,
                lock_timeout,
            }),
            None => StateSettings::Local,
        }
    }

    /// `sslmode` and `ca_file`, from the table or else from the URL.
    fn state_tls(
        &mut self,
        raw: &RawState,
        url: Option<&Secret>,
    ) -> (SslMode, Option<std::path::PathBuf>) {
        let sslmode = match &raw.sslmode {
            Some(mode) => SslMode::parse(mode.get_ref()).unwrap_or_else(|| {
                self.push(
                    Problem::at(mode.span(), format!("unknown sslmode `{}`", mode.get_ref()))
                        .label("not a TLS mode")
                        .help(format!("write one of {}", SslMode::NAMES)),
                );
                SslMode::default()
            }),
            None => url
                .and_then(|u| state_settings::split_tls_params(u.expose()).1)
                .and_then(|m| SslMode::parse(&m))
                .unwrap_or_default(),
        };
        let ca_file = match &raw.ca_file {
            Some(path) => {
                let full = self.base_dir.join(super::expand_home(path.get_ref()));
                if !full.is_file() {
                    self.push(
                        Problem::at(path.span(), format!("CA file {} does not exist", full.display()))
                            .label("no such file")
                            .help("give the PEM file of the CA that signed the server's certificate (relative paths start at the Clusterfile's folder)"),
                    );
                }
                Some(full)
            }
            None => url
                .and_then(|u| state_settings::split_tls_params(u.expose()).2)
                .map(|p| self.base_dir.join(super::expand_home(&p))),
        };
        (sslmode, ca_file)
    }

    /// The URL if it is one; a problem (never quoting it) otherwise.
    fn state_url(&mut self, url: Secret, span: Option<std::ops::Range<usize>>) -> Option<Secret> {
        match state_settings::check_url(url.expose()) {
            Ok(()) => Some(url),
            Err(why) => {
                let (span, label, help) = match span {
                    Some(span) => (
                        span,
                        "the URL read from here",
                        "write `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` or `host=… dbname=…` in the secret's source",
                    ),
                    None => (
                        0..0,
                        "from --state-url / CAIRN_STATE_URL",
                        "fix the URL given by --state-url or CAIRN_STATE_URL",
                    ),
                };
                self.push(
                    Problem::at(span, format!("the state backend's URL is not valid: {why}"))
                        .label(label)
                        .help(help),
                );
                None
            }
        }
    }
}
