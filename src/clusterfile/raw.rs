//! Raw Clusterfile types: a faithful serde mirror of the TOML, nothing more.
//!
//! Every struct denies unknown keys, and every value that validation may
//! reject is wrapped in [`Spanned`] so the error can point at it. These types
//! are also the source of the JSON schema (`cairn schema`,
//! `schemas/clusterfile.schema.json`), so their doc comments are the
//! reference text users see in their editors. Nothing here checks meaning:
//! that is `model::validate`'s job, which turns these into the `Model`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A cairn Clusterfile: the hosts of one cluster and everything that should be true on them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cairn Clusterfile")]
pub struct RawClusterfile {
    /// Format version of this file. Only `1` exists.
    #[schemars(with = "u32")]
    pub version: Spanned<i64>,
    /// Cluster name: names the state folder `.cairn/<name>/` and is `${cluster}` in strings.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// SSH defaults for every host; a host's own `ssh` table overrides any key.
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    /// Variables: `${name}` in Clusterfile strings, `{{ name }}` in templates.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawVar>")]
    pub vars: BTreeMap<String, Spanned<RawVar>>,
    /// The hosts, each with its roles.
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    /// Bundles of files (sealos cluster images) shipped to hosts.
    #[serde(default)]
    pub bundles: Vec<RawBundle>,
    /// Single files, copied or rendered as templates, per host.
    #[serde(default)]
    pub files: Vec<RawFile>,
    /// Patches applied to a bundle's files before they ship (sealos Config).
    #[serde(default)]
    pub configs: Vec<RawConfig>,
    /// Commands run on hosts, in dependency order.
    #[serde(default)]
    pub steps: Vec<RawStep>,
    /// Where the cluster's state and its lock live (default: `.cairn/<name>/` beside the Clusterfile).
    #[serde(default)]
    pub state: Option<RawState>,
}

/// `[state]`: where the cluster's state and its lock are kept.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `"local"` (default: `.cairn/<name>/` beside the Clusterfile) or `"postgres"`.
    #[schemars(with = "Option<String>")]
    pub backend: Option<Spanned<String>>,
    /// The PostgreSQL connection URL, as a secret (`env:NAME` / `file:PATH`, or `{ secret = "..." }`): it may hold a password.
    #[schemars(with = "Option<RawSecretRef>")]
    pub url: Option<Spanned<RawSecretRef>>,
    /// The schema cairn's tables live in (default `cairn`).
    #[schemars(with = "Option<String>")]
    pub schema: Option<Spanned<String>>,
    /// TLS: `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`.
    #[schemars(with = "Option<String>")]
    pub sslmode: Option<Spanned<String>>,
    /// CA certificate file (PEM) for `verify-ca` / `verify-full`; relative to the Clusterfile's folder.
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// How long an apply waits for the cluster lock when `--lock-timeout` is not given (`30s`, `5m`).
    #[schemars(with = "Option<String>")]
    pub lock_timeout: Option<Spanned<String>>,
}

/// SSH settings. All optional: unset keys fall back to the cluster's `[ssh]`, then to ssh's own defaults.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// Login user (default `root`).
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// SSH port (default 22).
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<i64>>,
    /// Private key file; `~` expands to the home folder, a relative path starts at the Clusterfile's folder. Default: the agent and ~/.ssh/config.
    #[schemars(with = "Option<String>")]
    pub identity: Option<Spanned<String>>,
    /// Run every action as root through sudo (for a non-root `user`).
    pub sudo: Option<bool>,
    /// Password for sudo, as a secret reference (`env:NAME` or `file:PATH`, or `{ secret = "..." }`); sent on stdin only.
    #[schemars(with = "Option<RawSecretRef>")]
    pub sudo_password: Option<Spanned<RawSecretRef>>,
    /// Login password, as a secret (`{ secret = "env:NAME" }` or `file:PATH`): handed to OpenSSH by an askpass helper, never on a command line or on disk.
    #[schemars(with = "Option<RawSecretRef>")]
    pub password: Option<Spanned<RawSecretRef>>,
    /// Passphrase of an encrypted `identity`, as a secret; handed over like `password`.
    #[schemars(with = "Option<RawSecretRef>")]
    pub identity_passphrase: Option<Spanned<RawSecretRef>>,
    /// A user certificate (`ssh-keygen -s`) for `identity` (OpenSSH `CertificateFile`).
    #[schemars(with = "Option<String>")]
    pub certificate: Option<Spanned<String>>,
    /// Public key of a CA whose signed host certificates are trusted (as an `@cert-authority` line in `known_hosts`), also under `host_keys = "strict"`.
    #[schemars(with = "Option<String>")]
    pub host_ca: Option<Spanned<String>>,
    /// An ssh config file read instead of `~/.ssh/config` (OpenSSH `-F`).
    #[schemars(with = "Option<String>")]
    pub config: Option<Spanned<String>>,
    /// Host key checking: `strict`, `accept-new` (default) or `off`.
    #[schemars(with = "Option<HostKeyPolicy>")]
    pub host_keys: Option<Spanned<HostKeyPolicy>>,
    /// Jump host(s) (`ProxyJump`), `[user@]host[:port]`, or a list of them, nearest first. Each hop uses this host's identity, secrets, host-key policy and timeout unless the ssh config sets them for it.
    #[schemars(with = "Option<JumpHosts>")]
    pub jump: Option<Spanned<RawSelectors>>,
    /// How long to wait for a host to answer, e.g. `10s` (default 10s).
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Spanned<String>>,
}

/// How host keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Only keys already known are accepted.
    Strict,
    /// New hosts' keys are learned; a changed key is refused.
    AcceptNew,
    /// No checking at all (test labs only).
    Off,
}

/// A variable: a plain TOML value, or a secret read at run time.
///
/// Deserialized by hand: an untagged enum would also read a one-element
/// array (`["x"]`) as a secret, since serde lets a sequence fill a struct.
/// A secret is exactly a table whose only key is `secret`, holding a string.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawVar {
    /// A secret: `{ secret = "env:NAME" }` or `{ secret = "file:PATH" }`. Never printed, never stored in clear.
    Secret(RawSecret),
    /// A string, number, boolean, array or table.
    #[schemars(with = "serde_json::Value")]
    Value(toml::Value),
}

impl<'de> Deserialize<'de> for RawVar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        if let toml::Value::Table(table) = &value
            && table.len() == 1
            && let Some(secret) = table.get("secret")
        {
            return match secret {
                toml::Value::String(s) => Ok(RawVar::Secret(RawSecret { secret: s.clone() })),
                _ => Err(serde::de::Error::custom(
                    "`secret` must be a string: `env:NAME` or `file:PATH`",
                )),
            };
        }
        Ok(RawVar::Value(value))
    }
}

/// One jump host, or a list of them with the nearest first (read as [`RawSelectors`]; this is its schema).
#[derive(JsonSchema)]
#[schemars(untagged)]
#[expect(dead_code, reason = "only its JSON schema is used")]
enum JumpHosts {
    One(String),
    Many(Vec<String>),
}

/// A secret reference: `"env:NAME"` / `"file:PATH"`, or the same as `{ secret = "..." }`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawSecretRef {
    /// `env:NAME` or `file:PATH`.
    Plain(String),
    /// `{ secret = "env:NAME" }`, as variables write secrets.
    Table(RawSecret),
}

impl RawSecretRef {
    /// `env:NAME` or `file:PATH`, however it was written.
    pub fn reference(&self) -> &str {
        match self {
            RawSecretRef::Plain(s) => s,
            RawSecretRef::Table(t) => &t.secret,
        }
    }
}

impl<'de> Deserialize<'de> for RawSecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match RawVar::deserialize(deserializer)? {
            RawVar::Secret(secret) => Ok(RawSecretRef::Table(secret)),
            RawVar::Value(toml::Value::String(s)) => Ok(RawSecretRef::Plain(s)),
            RawVar::Value(_) => Err(serde::de::Error::custom(
                "expected a secret: `{ secret = \"env:NAME\" }` or `{ secret = \"file:PATH\" }`",
            )),
        }
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSecret {
    /// `env:NAME` (an environment variable) or `file:PATH` (a file, relative to the Clusterfile; one trailing newline dropped).
    pub secret: String,
}

/// How cairn reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Over SSH (default).
    Ssh,
    /// This machine, without SSH.
    Local,
}

/// A host, or a range of hosts, and its roles.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// `addr`, `user@addr:port`, or a range `10.0.0.5-10.0.0.9` (last octet varies).
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    /// Name used in `on`, `after = ["x@NAME"]` and output. Default: first role + index (`master0`), or `host<N>`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Roles, used by `on` selectors.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub roles: Vec<Spanned<String>>,
    /// Per-host variables; override `[vars]`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawVar>")]
    pub vars: BTreeMap<String, Spanned<RawVar>>,
    /// `ssh` (default) or `local` (this machine, no SSH).
    #[schemars(with = "Option<TransportKind>")]
    pub transport: Option<Spanned<TransportKind>>,
    /// SSH settings for this host only.
    pub ssh: Option<RawSsh>,
}

/// One selector or a list: a role (`node`), a host name (`master0`), or `role[i]` (`master[0]`).
///
/// Deserialized by hand: serde's untagged enums buffer values and so lose
/// the spans that errors point at.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum RawSelectors {
    One(String),
    Many(#[schemars(with = "Vec<String>")] Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawSelectors {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelectorsVisitor;
        impl<'de> serde::de::Visitor<'de> for SelectorsVisitor {
            type Value = RawSelectors;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a selector string or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSelectors, E> {
                Ok(RawSelectors::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSelectors, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(RawSelectors::Many(items))
            }
        }
        deserializer.deserialize_any(SelectorsVisitor)
    }
}

/// Spreads a spanned selector value into one spanned string per selector.
pub fn selector_items(on: &Spanned<RawSelectors>) -> Vec<Spanned<String>> {
    match on.get_ref() {
        RawSelectors::One(one) => vec![Spanned::new(on.span(), one.clone())],
        RawSelectors::Many(many) => many.clone(),
    }
}

/// What a bundle is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    /// Shipped to every targeted host.
    Rootfs,
    /// Overlays the rootfs bundles on the same hosts and dest; its files win.
    Patch,
    /// Shipped to the first targeted host only (an application installed once per cluster).
    App,
}

/// A bundle: a directory (or `.tar.zst`) of files shipped to hosts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBundle {
    /// Unique among steps, bundles and files: `after` refers to it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Directory, `.tar.zst`, OCI or docker image archive, or OCI layout folder, relative to the Clusterfile.
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// `rootfs` (default), `patch` or `app`.
    #[schemars(with = "Option<BundleKind>")]
    pub kind: Option<Spanned<BundleKind>>,
    /// Hosts to ship to. Default: every host.
    #[schemars(with = "Option<RawSelectors>")]
    pub on: Option<Spanned<RawSelectors>>,
    /// Destination folder on the host. Default `/var/lib/cairn/${cluster}/rootfs` (`.../apps/<name>` for apps).
    /// A relative path resolves against the Clusterfile's folder on local hosts.
    #[schemars(with = "Option<String>")]
    pub dest: Option<Spanned<String>>,
    /// Globs of files rendered per host with minijinja; the `.tmpl` suffix is dropped.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub templates: Vec<Spanned<String>>,
    /// Steps, bundles or files this waits for.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub after: Vec<Spanned<String>>,
    /// Overrides of the hooks its `bundle.toml` names (`check`, `init`, `clean`, `init-NAME`, `clean-NAME`):
    /// a command replaces one, `false` disables it, a new name adds one. Run in `<dest>/scripts`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawHook>")]
    pub hooks: BTreeMap<String, Spanned<RawHook>>,
    /// The command run after install (sealos CMD), replacing `bundle.toml`'s `cmd`; `false` disables it.
    #[schemars(with = "Option<RawHook>")]
    pub cmd: Option<Spanned<RawHook>>,
    /// The image reference this bundle stands for (e.g. `docker.io/labring/kubernetes:v1.27.7`); shown, and matched by config patches.
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
}

/// A hook override: a shell command, or `false` to disable the hook.
///
/// Deserialized by hand, like [`RawSelectors`], so the span is kept.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum RawHook {
    /// The shell command (`${}` reads the Clusterfile's variables).
    Command(String),
    /// `false`: the hook does not run.
    Disabled(bool),
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HookVisitor;
        impl serde::de::Visitor<'_> for HookVisitor {
            type Value = RawHook;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a shell command, or false to disable the hook")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawHook, E> {
                Ok(RawHook::Command(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawHook, E> {
                if v {
                    Err(E::custom(
                        "`true` is not a hook: write a shell command, or `false` to disable it",
                    ))
                } else {
                    Ok(RawHook::Disabled(false))
                }
            }
        }
        deserializer.deserialize_any(HookVisitor)
    }
}

/// A single file, copied or rendered per host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Name used by `after`; default: the dest.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Local file, relative to the Clusterfile. Exactly one of `source` and `content`.
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    /// Inline content. Exactly one of `source` and `content`.
    pub content: Option<String>,
    /// Path on the host (relative: against the Clusterfile's folder, local hosts only).
    #[schemars(with = "String")]
    pub dest: Spanned<String>,
    /// Render with minijinja before shipping.
    #[serde(default)]
    pub template: bool,
    /// Octal mode, e.g. `"0640"` (default `0644`).
    #[schemars(with = "Option<String>")]
    pub mode: Option<Spanned<String>>,
    /// `user[:group]` to chown to.
    #[schemars(with = "Option<String>")]
    pub owner: Option<Spanned<String>>,
    /// Hosts to ship to. Default: every host.
    #[schemars(with = "Option<RawSelectors>")]
    pub on: Option<Spanned<RawSelectors>>,
    /// Steps, bundles or files this waits for.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub after: Vec<Spanned<String>>,
}

/// How a config patch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigStrategy {
    /// Deep merge (YAML incl. multi-document, JSON, TOML by the file's extension).
    Merge,
    /// Replace the whole file.
    Override,
    /// Put `data` before the file's content.
    Insert,
    /// Put `data` after the file's content.
    Append,
}

/// A patch to a file of a bundle, applied before it ships (sealos Config).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The bundle whose file is patched. Without `bundle` and `match`: every bundle that ships `path`.
    #[schemars(with = "Option<String>")]
    pub bundle: Option<Spanned<String>>,
    /// Limits the patch to one bundle, as sealos' `match`: a bundle's name, or an image reference compared with the bundles' `image`.
    #[serde(rename = "match")]
    #[schemars(with = "Option<String>")]
    pub match_: Option<Spanned<String>>,
    /// The file's path inside the bundle, as shipped (templates: without `.tmpl`).
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// `merge` (default), `override`, `insert` or `append`.
    #[schemars(with = "Option<ConfigStrategy>")]
    pub strategy: Option<Spanned<ConfigStrategy>>,
    /// The patch text.
    #[schemars(with = "String")]
    pub data: Spanned<String>,
}

/// A command run on hosts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Unique among steps, bundles and files.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Hosts to run on. Default: every host.
    #[schemars(with = "Option<RawSelectors>")]
    pub on: Option<Spanned<RawSelectors>>,
    /// Shell script, run with `sh` (fed on stdin, never on a command line).
    #[schemars(with = "String")]
    pub run: Spanned<String>,
    /// Working directory. Default: the user's home (ssh), the Clusterfile's folder (local).
    #[schemars(with = "Option<String>")]
    pub cwd: Option<Spanned<String>>,
    /// Steps, bundles or files to wait for: `x` (same host, else all its hosts), `x@*`, `x@HOST`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub after: Vec<Spanned<String>>,
    /// Store the command's stdout (trimmed) as `${NAME}` for later steps.
    #[schemars(with = "Option<String>")]
    pub capture: Option<Spanned<String>>,
    /// The captured value is a secret (a join token): masked in output, run logs and state, never
    /// written to a receipt, and captured again when a later apply needs it (needs `capture`).
    #[serde(default)]
    #[schemars(with = "bool")]
    pub capture_secret: Option<Spanned<bool>>,
    /// Read-only probe: exit 0 means converged. Run on every refresh.
    #[schemars(with = "Option<String>")]
    pub check: Option<Spanned<String>>,
    /// Run when the step, or its host, leaves the Clusterfile (and by `cairn reset`).
    #[schemars(with = "Option<String>")]
    pub undo: Option<Spanned<String>>,
    /// Time limit per attempt, e.g. `5m` (default: none).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Extra attempts after a failure (default 0).
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<i64>>,
    /// Run once per host: upstream changes and edits no longer rerun it (`--replace` still does).
    #[serde(default)]
    pub once: bool,
    /// At most this many of the step's hosts at a time, lowest host first (`serial = 1`: one by one, as masters join). Default: all at once.
    #[schemars(with = "Option<u32>")]
    pub serial: Option<Spanned<i64>>,
}
