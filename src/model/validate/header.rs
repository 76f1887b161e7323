//! The top of a Clusterfile: `version`, `name`, `[ssh]` and `[vars]`.
//!
//! These come first because everything after reads them: hosts start from
//! the `[ssh]` defaults (a host's own `ssh` table is an overlay on them, by
//! the same code), and elements read `[vars]`. Secrets are loaded here, from
//! the environment or a file, as soon as they are named, so a missing one
//! is reported at the key that asks for it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::clusterfile::raw::{RawClusterfile, RawSecretRef, RawSsh, RawVar, selector_items};
use crate::diagnostic::Problem;
use crate::model::load_secret;
use crate::model::{
    BUILTINS, HostKeyPolicy, LoginSecret, Secret, SshSettings, VarValue, address, interp,
};

/// The only Clusterfile format this cairn reads.
const FORMAT_VERSION: i64 = 1;

/// Resolved defaults from `[ssh]`, which a host's own `ssh` table overlays.
pub(super) struct SshDefaults {
    pub(super) user: String,
    pub(super) port: u16,
    /// Whether `user` and `port` were written (else the ssh config may set them).
    pub(super) user_given: bool,
    pub(super) port_given: bool,
    pub(super) settings: SshSettings,
}

impl Validator<'_> {
    /// Checks `version` and `name`; returns the cluster's name. A key that
    /// was missing (span 0..0) is already reported by the parser.
    pub(super) fn header(&mut self, raw: &RawClusterfile) -> String {
        if *raw.version.get_ref() != FORMAT_VERSION && raw.version.span() != (0..0) {
            self.push(
                Problem::at(
                    raw.version.span(),
                    format!("unsupported version {}", raw.version.get_ref()),
                )
                .label("this cairn reads version 1")
                .help("set `version = 1`; a newer Clusterfile needs a newer cairn"),
            );
        }
        let name = raw.name.get_ref().clone();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !valid && raw.name.span() != (0..0) {
            self.push(
                Problem::at(raw.name.span(), format!("invalid cluster name `{name}`"))
                    .label("not a valid name")
                    .help("use letters, digits, `-`, `_` and `.` (it names the folder .cairn/<name>/)"),
            );
        }
        name
    }

    /// Loads a secret named by `env:NAME` or `file:PATH` (see
    /// [`load_secret`]), reporting why it cannot be.
    fn secret(&mut self, reference: &str, span: Range<usize>, what: &str) -> Option<Secret> {
        match load_secret(reference, &self.base_dir) {
            Ok(secret) => Some(secret),
            Err(unloadable) => {
                self.push(
                    Problem::at(span, format!("secret {what}: {}", unloadable.message))
                        .label(unloadable.label)
                        .help(unloadable.help),
                );
                None
            }
        }
    }

    /// `[ssh]` over the built-in defaults: root on port 22, new host keys
    /// accepted, ten seconds to connect.
    pub(super) fn ssh_defaults(&mut self, raw: Option<&RawSsh>) -> SshDefaults {
        let base = SshDefaults {
            user: "root".into(),
            port: 22,
            user_given: false,
            port_given: false,
            settings: SshSettings {
                identity: None,
                identity_passphrase: None,
                password: None,
                certificate: None,
                host_ca: None,
                config: None,
                sudo: false,
                sudo_password: None,
                sudo_password_ref: None,
                host_keys: HostKeyPolicy::AcceptNew,
                jump: Vec::new(),
                connect_timeout: Duration::from_secs(10),
                alias: None,
            },
        };
        match raw {
            Some(raw) => self.ssh_overlay(&base, raw),
            None => base,
        }
    }

    /// `base` with the keys `raw` sets replaced: used for `[ssh]` over the
    /// built-in defaults and for a host's `ssh` over `[ssh]`.
    pub(super) fn ssh_overlay(&mut self, base: &SshDefaults, raw: &RawSsh) -> SshDefaults {
        let mut out = SshDefaults {
            user: base.user.clone(),
            port: base.port,
            user_given: base.user_given,
            port_given: base.port_given,
            settings: base.settings.clone(),
        };
        if let Some(user) = &raw.user {
            if user.get_ref().is_empty() || user.get_ref().contains(char::is_whitespace) {
                self.push(Problem::at(user.span(), "invalid ssh user").label("not a user name"));
            }
            out.user.clone_from(user.get_ref());
            out.user_given = true;
        }
        if let Some(port) = &raw.port {
            match u16::try_from(*port.get_ref()) {
                Ok(p) if p > 0 => {
                    out.port = p;
                    out.port_given = true;
                }
                _ => self.push(
                    Problem::at(port.span(), format!("invalid port {}", port.get_ref()))
                        .label("not a port")
                        .help("ports run from 1 to 65535"),
                ),
            }
        }
        if let Some(identity) = &raw.identity {
            // Relative to the Clusterfile's folder, like every path in it
            // (`~/` is kept, and expanded when ssh starts).
            let path = identity.get_ref();
            let relative = crate::model::expand_home(path).is_relative();
            out.settings.identity = Some(if relative {
                self.base_dir.join(path).display().to_string()
            } else {
                path.clone()
            });
        }
        if let Some(sudo) = raw.sudo {
            out.settings.sudo = sudo;
        }
        if let Some(password) = &raw.sudo_password {
            let reference = password.get_ref().reference();
            out.settings.sudo_password =
                self.secret(reference, password.span(), "ssh.sudo_password");
            out.settings.sudo_password_ref = Some(reference.to_string());
        }
        if let Some(password) = &raw.password {
            out.settings.password = self.login_secret(password, "ssh.password");
        }
        if let Some(passphrase) = &raw.identity_passphrase {
            out.settings.identity_passphrase =
                self.login_secret(passphrase, "ssh.identity_passphrase");
        }
        for (key, path, slot) in [
            (
                "certificate",
                &raw.certificate,
                &mut out.settings.certificate,
            ),
            ("host_ca", &raw.host_ca, &mut out.settings.host_ca),
            ("config", &raw.config, &mut out.settings.config),
        ] {
            if let Some(path) = path {
                *slot = self.existing_file(path, key);
            }
        }
        if let Some(policy) = &raw.host_keys {
            out.settings.host_keys = *policy.get_ref();
        }
        if let Some(jump) = &raw.jump {
            out.settings.jump = Vec::new();
            for hop in selector_items(jump) {
                if let Err(error) = address::parse(hop.get_ref()) {
                    self.push(
                        Problem::at(hop.span(), format!("invalid jump host: {error}"))
                            .label("here")
                            .help("write `host`, `user@host` or `user@host:port`"),
                    );
                }
                out.settings.jump.push(hop.get_ref().clone());
            }
        }
        if let Some(timeout) = &raw.connect_timeout
            && let Some(d) = self.duration(timeout, "connect_timeout")
        {
            out.settings.connect_timeout = d;
        }
        out
    }

    /// A login secret (`password`, `identity_passphrase`), loaded now.
    fn login_secret(&mut self, raw: &Spanned<RawSecretRef>, what: &str) -> Option<LoginSecret> {
        let reference = raw.get_ref().reference();
        self.secret(reference, raw.span(), what)
            .map(|value| LoginSecret {
                reference: reference.to_string(),
                value,
            })
    }

    /// A file an `[ssh]` key names (`~/` expanded, relative to the
    /// Clusterfile's folder), as an absolute path; reported when missing,
    /// since ssh would only say so at connect time, host by host.
    fn existing_file(&mut self, path: &Spanned<String>, key: &str) -> Option<String> {
        let full = self
            .base_dir
            .join(crate::model::expand_home(path.get_ref()));
        if full.is_file() {
            return Some(full.display().to_string());
        }
        self.push(
            Problem::at(
                path.span(),
                format!("ssh.{key}: no file {}", full.display()),
            )
            .label("not found")
            .help("check the path (relative paths start at the Clusterfile's folder)"),
        );
        None
    }

    /// `[vars]` or a host's `vars`; invalid or reserved names are reported
    /// and left out.
    pub(super) fn vars(
        &mut self,
        raw: &BTreeMap<String, Spanned<RawVar>>,
    ) -> BTreeMap<String, VarValue> {
        let mut vars = BTreeMap::new();
        for (name, value) in raw {
            let span = value.span();
            let key_span = self.key_span(name, &span);
            if !interp::is_var_name(name) {
                self.push(
                    Problem::at(key_span, format!("invalid variable name `{name}`"))
                        .label("not a name")
                        .help("start with a letter or `_`; then letters, digits, `_`, `-`"),
                );
                continue;
            }
            if name == "cluster"
                || name == "host"
                || name.starts_with("host.")
                || name == "roles"
                || name.starts_with("roles.")
                || name == "bundle"
                || name.starts_with("bundle.")
            {
                self.push(
                    Problem::at(key_span, format!("variable `{name}` is built in"))
                        .label("reserved name")
                        .help(format!(
                            "choose another name; built-ins are {}",
                            BUILTINS.join(", ")
                        )),
                );
                continue;
            }
            let resolved = match value.get_ref() {
                RawVar::Secret(secret) => self
                    .secret(&secret.secret, span, &format!("`{name}`"))
                    .map(|value| VarValue::Secret {
                        reference: secret.secret.clone(),
                        value,
                    }),
                RawVar::Value(v) => Some(VarValue::Plain(v.clone())),
            };
            match resolved {
                Some(resolved) => {
                    vars.insert(name.clone(), resolved);
                }
                // Its secret could not be loaded, as reported: reads of it are not also undefined.
                None => {
                    self.unresolved_vars.insert(name.clone());
                }
            }
        }
        vars
    }
}
