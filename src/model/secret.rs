//! Secrets, and keeping them out of everything cairn shows or stores.
//!
//! A secret is loaded at validation (from the environment or a file) and
//! wrapped in [`Secret`], whose `Debug` prints `***`, so it cannot leak
//! through a log line or an error by accident; only [`Secret::expose`]
//! gives the value, where it is fed to a host. What a host sends back may
//! still contain a secret (a script that echoes it), so output and logs
//! pass through a [`Scrubber`] built from [`Model::secret_values`].

use std::sync::{Arc, PoisonError, RwLock};

use super::{Model, VarValue};

/// A secret value. Its `Debug` and `Display` never show it; only
/// [`Secret::expose`] does, at the few places that feed it to a host.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret reference could not be loaded: what, where it points, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadableSecret {
    pub message: String,
    pub label: &'static str,
    pub help: String,
}

/// Loads a secret named by `env:NAME` or `file:PATH` (relative to
/// `base_dir`, `~/` expanded). A file's final newline is dropped, since
/// editors add one that is not part of a password.
pub fn load_secret(
    reference: &str,
    base_dir: &std::path::Path,
) -> Result<Secret, UnloadableSecret> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map(Secret::new)
            .map_err(|_| UnloadableSecret {
                message: format!("environment variable `{name}` is not set"),
                label: "read from here",
                help: format!(
                    "export {name}=... before running cairn, or read the secret from a file with `file:PATH`"
                ),
            });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let full = base_dir.join(super::expand_home(path));
        return match std::fs::read_to_string(&full) {
            Ok(mut value) => {
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                Ok(Secret::new(value))
            }
            Err(error) => Err(UnloadableSecret {
                message: format!("cannot read {}: {error}", full.display()),
                label: "read from here",
                help: "check the path (relative paths start at the Clusterfile's folder)".into(),
            }),
        };
    }
    Err(UnloadableSecret {
        message: format!("unknown source `{reference}`"),
        label: "not env: or file:",
        help: "write `env:NAME` for an environment variable or `file:PATH` for a file".into(),
    })
}

/// Replaces secret values with `***` in anything shown or logged.
///
/// Clones share one list: a secret learnt during a run (a value captured
/// with `capture_secret`) is masked from then on by every part of the run.
#[derive(Clone, Default)]
pub struct Scrubber {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.secrets.read().map_or(0, |s| s.len());
        write!(f, "Scrubber({count} secrets)")
    }
}

impl Scrubber {
    pub fn new(mut secrets: Vec<String>) -> Scrubber {
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber {
            secrets: Arc::new(RwLock::new(secrets)),
        }
    }

    /// Masks `secret` too from now on (an empty value masks nothing).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let secrets = self.secrets.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

impl Model {
    /// A scrubber that masks every secret of this model.
    pub fn scrubber(&self) -> Scrubber {
        Scrubber::new(self.secret_values())
    }

    /// Every secret value in the model, so output can be scrubbed of them.
    pub fn secret_values(&self) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        let all_vars = self
            .vars
            .values()
            .chain(self.hosts.iter().flat_map(|h| h.vars.values()));
        for var in all_vars {
            if let VarValue::Secret { value, .. } = var {
                values.push(value.expose().to_string());
            }
        }
        for host in &self.hosts {
            if let Some(password) = &host.ssh.sudo_password {
                values.push(password.expose().to_string());
            }
            for login in [&host.ssh.password, &host.ssh.identity_passphrase]
                .into_iter()
                .flatten()
            {
                values.push(login.value.expose().to_string());
            }
        }
        if let crate::model::state_settings::StateSettings::Postgres(pg) = &self.state {
            values.push(pg.url.expose().to_string());
            values.extend(crate::model::state_settings::password_of(pg.url.expose()));
        }
        values.retain(|v| !v.is_empty());
        values.sort();
        values.dedup();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
        let scrubber = Scrubber::new(vec!["hunter2".into()]);
        assert_eq!(format!("{scrubber:?}"), "Scrubber(1 secrets)");
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let scrubber = Scrubber::new(vec!["pass".into(), "password1".into()]);
        assert_eq!(scrubber.scrub("password1 then pass"), "*** then ***");
    }

    #[test]
    fn without_secrets_text_is_unchanged() {
        assert_eq!(Scrubber::default().scrub("a b"), "a b");
    }

    #[test]
    fn a_secret_learnt_later_is_masked_by_every_clone() {
        let scrubber = Scrubber::new(vec!["abc".into()]);
        let clone = scrubber.clone();
        scrubber.add("kubeadm join --token abcdef.0123456789abcdef");
        scrubber.add("");
        assert_eq!(
            clone.scrub("run: kubeadm join --token abcdef.0123456789abcdef; abc"),
            "run: ***; ***"
        );
        assert_eq!(clone.scrub("nothing here"), "nothing here");
    }
}
