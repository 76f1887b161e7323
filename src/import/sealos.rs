//! A sealos Clusterfile (`apps.sealos.io/v1beta1`) as a cairn Clusterfile.
//!
//! sealos reads one multi-document YAML file: a `Cluster` (hosts with their
//! ips, roles, env and ssh; the cluster's ssh, env, images and command),
//! `Config` patches, and kubeadm documents. Each becomes what cairn uses for
//! the same job, as sealos' own code treats it:
//!
//! - a host entry with several ips: one `[[hosts]]` per ip, with the
//!   entry's roles (`master`, `node`, and labels such as `amd64`, kept as
//!   roles); a port in an ip (`192.168.0.2:22`) stays in the address unless
//!   it is the port the host's ssh uses anyway;
//! - `spec.ssh` and a host's `ssh` (which overrides it key by key, as
//!   sealos' `OverSSHConfig`): `[ssh]` and the host's `ssh`; `passwd` and
//!   `pkPasswd` become secrets read from environment variables (the clear
//!   value is never written); a user other than `root` gets `sudo = true`,
//!   as sealos runs every command through sudo then, answering sudo's
//!   prompt with the password;
//! - `spec.env` (`K=V`, a repeated key becoming a list, as sealos does):
//!   `[vars]`; a host's `env`: its `vars`;
//! - each image of `spec.image`: a `[[bundles]]` read from the archive
//!   `sealos save` writes, with the image's reference as `image`;
//! - `spec.command`: `cmd` of the first image's bundle, as sealos replaces
//!   the CMD of the first image it mounts (its `RunGuest`);
//! - a `Config`: a `[[configs]]` on the bundle of the image it `match`es
//!   (none: every bundle that ships the path); sealos' default strategy,
//!   when none is given, writes `data` as the whole file: `override`;
//! - the kubeadm documents (`InitConfiguration`, `ClusterConfiguration`,
//!   `JoinConfiguration`, `KubeletConfiguration`, `KubeProxyConfiguration`):
//!   one merge patch on the rootfs's `etc/kubeadm.yml`, where sealos reads
//!   its kubeadm defaults, the rootfs taken to be the first image.
//!
//! Everything else is kept out and warned about by its field path.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use super::{ImageArchive, ImportError, ImportWarning, Imported, SecretVariable};
use crate::model::image_ref::same_image;

/// The `apiVersion` of sealos' `Cluster` and `Config`.
const SEALOS_API: &str = "apps.sealos.io/v1beta1";
/// Where a rootfs image keeps the kubeadm configuration sealos merges into.
const KUBEADM_PATH: &str = "etc/kubeadm.yml";
/// The groups of the documents sealos hands to kubeadm.
const KUBEADM_GROUPS: [&str; 3] = [
    "kubeadm.k8s.io/",
    "kubelet.config.k8s.io/",
    "kubeproxy.config.k8s.io/",
];
/// The variables the cluster-wide ssh secrets are read from.
const PASSWORD_VARIABLE: &str = "SEALOS_SSH_PASSWORD";
const PASSPHRASE_VARIABLE: &str = "SEALOS_SSH_PK_PASSWORD";

/// Reads the sealos Clusterfile `text` (from `file`, named in messages).
pub fn import(file: &str, text: &str) -> Result<Imported, ImportError> {
    let documents = documents(file, text)?;
    let mut importer = Importer::default();
    let mut clusters = Vec::new();
    let mut configs = Vec::new();
    let mut kubeadm = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let api = text_of(document.get("apiVersion")).unwrap_or_default();
        let kind = text_of(document.get("kind")).unwrap_or_default();
        let place = format!("document {} ({api} {kind})", index + 1);
        if kind == "Cluster" && api.starts_with("apps.sealos.io/") {
            if api != SEALOS_API {
                importer.warn(
                    format!("{place}.apiVersion"),
                    format!("read as {SEALOS_API}; check the result"),
                );
            }
            clusters.push(importer.cluster(document));
        } else if kind == "Config" && api.starts_with("apps.sealos.io/") {
            configs.push(importer.config(&place, document));
        } else if KUBEADM_GROUPS.iter().any(|group| api.starts_with(group)) {
            kubeadm.push((kind, document));
        } else {
            importer.warn(
                place,
                "not a kind cairn imports (Cluster, Config, kubeadm's and the kubelet's and kube-proxy's configurations); left out",
            );
        }
    }
    let cluster = match clusters.len() {
        0 => {
            return Err(ImportError::NoCluster {
                file: file.to_string(),
            });
        }
        1 => clusters.remove(0),
        count => {
            return Err(ImportError::ManyClusters {
                file: file.to_string(),
                count,
            });
        }
    };
    Ok(importer.write(file, &cluster, configs, &kubeadm))
}

/// The file's documents, empty ones left out.
fn documents(file: &str, text: &str) -> Result<Vec<Value>, ImportError> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|error| {
            let mut message = error.to_string();
            if text.contains("{{") {
                message.push_str("; ");
                message.push_str(TEMPLATE_HINT);
            }
            ImportError::Yaml {
                file: file.to_string(),
                message,
            }
        })?;
        if has_mapping_key(&value) {
            return Err(ImportError::Yaml {
                file: file.to_string(),
                message: format!("a value is written `{{{{ ... }}}}`; {TEMPLATE_HINT}"),
            });
        }
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

const TEMPLATE_HINT: &str = "it looks like a template (`{{ .Values... }}`): render it first, as sealos does with --values and --set, and import the result";

/// Whether some mapping in `value` has a mapping as a key: what YAML makes
/// of a Go template's `{{ .Values.name }}`, and nothing a sealos
/// Clusterfile holds.
fn has_mapping_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            .any(|(key, value)| key.is_mapping() || has_mapping_key(value)),
        Value::Sequence(items) => items.iter().any(has_mapping_key),
        Value::Tagged(tagged) => has_mapping_key(&tagged.value),
        _ => false,
    }
}

/// sealos' `SSH`, as a host or the cluster gives it.
#[derive(Debug, Default, Clone)]
struct Ssh {
    user: Option<String>,
    passwd: Option<String>,
    pk: Option<String>,
    pk_passwd: Option<String>,
    port: Option<u16>,
}

impl Ssh {
    /// `self` with `over`'s keys where it gives them (sealos' `OverSSHConfig`).
    fn overlaid(&self, over: &Ssh) -> Ssh {
        Ssh {
            user: over.user.clone().or_else(|| self.user.clone()),
            passwd: over.passwd.clone().or_else(|| self.passwd.clone()),
            pk: over.pk.clone().or_else(|| self.pk.clone()),
            pk_passwd: over.pk_passwd.clone().or_else(|| self.pk_passwd.clone()),
            port: over.port.or(self.port),
        }
    }
}

/// One entry of `spec.hosts`.
#[derive(Debug, Default)]
struct HostEntry {
    field: String,
    ips: Vec<String>,
    roles: Vec<String>,
    env: Vec<(String, String)>,
    ssh: Option<Ssh>,
}

/// The `Cluster` document.
#[derive(Debug, Default)]
struct Cluster {
    name: String,
    hosts: Vec<HostEntry>,
    images: Vec<String>,
    ssh: Ssh,
    env: Vec<(String, String)>,
    command: Vec<String>,
    /// Each image's type as `status.mounts` recorded it (a Clusterfile
    /// sealos wrote after a run): (image, `rootfs` | `patch` | `app`).
    kinds: Vec<(String, &'static str)>,
}

impl Cluster {
    /// The kind `status.mounts` recorded for `image`, if any.
    fn kind_of(&self, image: &str) -> Option<&'static str> {
        self.kinds
            .iter()
            .find(|(known, _)| same_image(known, image))
            .map(|(_, kind)| *kind)
    }

    /// The index in `images` of the rootfs: the one `status.mounts` says
    /// is a rootfs, else the first (sealos' order puts it first).
    fn rootfs(&self) -> Option<usize> {
        self.images
            .iter()
            .position(|image| self.kind_of(image) == Some("rootfs"))
            .or_else(|| (!self.images.is_empty()).then_some(0))
    }
}

/// A `Config` document.
#[derive(Debug)]
struct Config {
    place: String,
    name: String,
    path: Option<String>,
    matched: Option<String>,
    strategy: Option<String>,
    data: String,
}

/// A mapping read key by key: what is left at the end was not read, and is warned about.
struct Fields {
    path: String,
    map: Mapping,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

#[derive(Debug, Default)]
struct Importer {
    warnings: Vec<ImportWarning>,
    secrets: Vec<SecretVariable>,
}

impl Importer {
    fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ImportWarning {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `value` as a mapping to read key by key (anything else is warned about).
    fn fields(&mut self, path: &str, value: Option<Value>) -> Fields {
        let map = match value {
            None | Some(Value::Null) => Mapping::new(),
            Some(Value::Mapping(map)) => map,
            Some(_) => {
                self.warn(path, "not a mapping; left out");
                Mapping::new()
            }
        };
        Fields {
            path: path.to_string(),
            map,
        }
    }

    /// Warns about every key of `fields` not read.
    fn finish(&mut self, fields: Fields) {
        for (key, _) in fields.map {
            let key = text_of(Some(&key)).unwrap_or_else(|| format!("{key:?}"));
            self.warn(
                format!("{}.{key}", fields.path),
                "not a field cairn imports; left out",
            );
        }
    }

    fn text(&mut self, field: &str, value: Option<Value>) -> Option<String> {
        let value = value?;
        let text = text_of(Some(&value));
        if text.is_none() {
            self.warn(field, "not a string; left out");
        }
        text
    }

    /// A list of strings; a lone string is a list of one.
    fn strings(&mut self, field: &str, value: Option<Value>) -> Vec<String> {
        match value {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| self.text(&format!("{field}[{i}]"), Some(item)))
                .collect(),
            Some(other) => self.text(field, Some(other)).into_iter().collect(),
        }
    }

    fn port(&mut self, field: &str, value: Option<Value>) -> Option<u16> {
        let text = self.text(field, value)?;
        match text.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => {
                self.warn(field, format!("`{text}` is not a port (1-65535); left out"));
                None
            }
        }
    }

    /// `K=V` lines, in order.
    fn env(&mut self, field: &str, value: Option<Value>) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for (i, line) in self.strings(field, value).into_iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some((key, value)) = line.split_once('=') else {
                self.warn(item, "not `NAME=VALUE`; left out");
                continue;
            };
            let key = key.trim();
            if !crate::model::interp::is_var_name(key) {
                self.warn(
                    item,
                    format!(
                        "`{key}` cannot be a cairn variable (letters, digits, `_`, `-`, starting with a letter or `_`); left out"
                    ),
                );
                continue;
            }
            if matches!(key, "cluster" | "host" | "roles" | "bundle") {
                self.warn(
                    item,
                    format!("`{key}` is a built-in variable in cairn; left out"),
                );
                continue;
            }
            env.push((key.to_string(), value.to_string()));
        }
        env
    }

    fn ssh(&mut self, path: &str, value: Option<Value>) -> Ssh {
        let mut fields = self.fields(path, value);
        let mut text = |key: &str| {
            let v = fields.take(key);
            self.text(&fields.field(key), v)
        };
        let (user, passwd, pk, pk_passwd) =
            (text("user"), text("passwd"), text("pk"), text("pkPasswd"));
        let port = fields.take("port");
        let ssh = Ssh {
            user,
            passwd,
            pk,
            pk_passwd,
            port: self.port(&fields.field("port"), port),
        };
        if fields.take("pkData").is_some() {
            self.warn(
                fields.field("pkData"),
                "a private key written inline is not copied: save it to a file (mode 0600) and set `identity` to it",
            );
        }
        if fields.take("pkName").is_some() {
            self.warn(
                fields.field("pkName"),
                "not used: `identity` names the key file",
            );
        }
        self.finish(fields);
        // A value sealos leaves empty means "not set".
        Ssh {
            user: ssh.user.filter(|s| !s.is_empty()),
            passwd: ssh.passwd.filter(|s| !s.is_empty()),
            pk: ssh.pk.filter(|s| !s.is_empty()),
            pk_passwd: ssh.pk_passwd.filter(|s| !s.is_empty()),
            port: ssh.port,
        }
    }

    fn cluster(&mut self, document: Value) -> Cluster {
        let mut doc = self.fields("Cluster", Some(document));
        doc.take("apiVersion");
        doc.take("kind");
        let mut cluster = Cluster::default();
        let metadata = doc.take("metadata");
        let mut metadata = self.fields("Cluster.metadata", metadata);
        let name = metadata.take("name");
        cluster.name = self
            .text("Cluster.metadata.name", name)
            .unwrap_or_else(|| "default".to_string());
        // sealos writes `creationTimestamp: null` into every file it makes.
        metadata.take("creationTimestamp");
        for key in ["labels", "annotations"] {
            if metadata.take(key).is_some() {
                self.warn(
                    metadata.field(key),
                    "cairn keeps no metadata on a cluster; left out",
                );
            }
        }
        self.finish(metadata);

        let spec = doc.take("spec");
        let mut spec = self.fields("Cluster.spec", spec);
        let images = spec.take("image");
        cluster.images = self.strings("Cluster.spec.image", images);
        let ssh = spec.take("ssh");
        cluster.ssh = self.ssh("Cluster.spec.ssh", ssh);
        let env = spec.take("env");
        cluster.env = self.env("Cluster.spec.env", env);
        let command = spec.take("command");
        cluster.command = self.strings("Cluster.spec.command", command);
        match spec.take("hosts") {
            None => {}
            Some(Value::Sequence(hosts)) => {
                for (i, host) in hosts.into_iter().enumerate() {
                    let entry = self.host_entry(&format!("Cluster.spec.hosts[{i}]"), host);
                    cluster.hosts.push(entry);
                }
            }
            Some(_) => self.warn("Cluster.spec.hosts", "not a list; left out"),
        }
        self.finish(spec);

        let status = doc.take("status");
        if status.is_some() {
            cluster.kinds = self.mount_kinds(status);
        }
        self.finish(doc);
        cluster
    }

    /// The image types in `status.mounts` (the rest of the status is what
    /// sealos recorded of its last run: cairn keeps its own state).
    fn mount_kinds(&mut self, status: Option<Value>) -> Vec<(String, &'static str)> {
        let mut status = self.fields("Cluster.status", status);
        let mut kinds = Vec::new();
        if let Some(Value::Sequence(mounts)) = status.take("mounts") {
            for mount in mounts {
                let image = text_of(mount.get("imageName"));
                let kind = match text_of(mount.get("type")).as_deref() {
                    Some("rootfs") => "rootfs",
                    Some("patch") => "patch",
                    // sealos: an image without a type is an application.
                    _ => "app",
                };
                if let Some(image) = image {
                    kinds.push((image, kind));
                }
            }
        }
        if !status.map.is_empty() {
            self.warn(
                "Cluster.status",
                "what sealos recorded of its last run; cairn keeps its own state: left out (only the images' types in status.mounts are read)",
            );
        }
        kinds
    }

    fn host_entry(&mut self, path: &str, value: Value) -> HostEntry {
        let mut fields = self.fields(path, Some(value));
        let ips = fields.take("ips");
        let roles = fields.take("roles");
        let env = fields.take("env");
        let ssh = fields.take("ssh");
        let entry = HostEntry {
            field: path.to_string(),
            ips: self.strings(&fields.field("ips"), ips),
            roles: self.strings(&fields.field("roles"), roles),
            env: self.env(&fields.field("env"), env),
            ssh: ssh.map(|ssh| self.ssh(&format!("{path}.ssh"), Some(ssh))),
        };
        self.finish(fields);
        entry
    }

    fn config(&mut self, place: &str, document: Value) -> Config {
        let mut doc = self.fields(place, Some(document));
        doc.take("apiVersion");
        doc.take("kind");
        let metadata = doc.take("metadata");
        let mut metadata = self.fields(&format!("{place}.metadata"), metadata);
        let name = metadata.take("name");
        let name = self.text(&metadata.field("name"), name).unwrap_or_default();
        self.finish(metadata);
        let place = if name.is_empty() {
            place.to_string()
        } else {
            format!("Config {name}")
        };
        let spec = doc.take("spec");
        let mut spec = self.fields(&format!("{place}.spec"), spec);
        let take = |spec: &mut Fields, this: &mut Importer, key: &str| {
            let value = spec.take(key);
            this.text(&spec.field(key), value)
        };
        let config = Config {
            path: take(&mut spec, self, "path").filter(|p| !p.is_empty()),
            matched: take(&mut spec, self, "match").filter(|m| !m.is_empty()),
            strategy: take(&mut spec, self, "strategy").filter(|s| !s.is_empty()),
            data: take(&mut spec, self, "data").unwrap_or_default(),
            place,
            name,
        };
        self.finish(spec);
        self.finish(doc);
        config
    }

    /// The secret for `value` of `field`, read from `variable`, or from the
    /// variable already named for the same value.
    fn secret(
        &mut self,
        variable: &str,
        field: &str,
        value: &str,
        known: &[(String, String)],
    ) -> String {
        if let Some((existing, _)) = known.iter().find(|(_, v)| v == value) {
            return existing.clone();
        }
        self.secrets.push(SecretVariable {
            variable: variable.to_string(),
            holds: field.to_string(),
        });
        variable.to_string()
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one pass writing the Clusterfile in the order it reads: header, ssh, vars, hosts, bundles, configs"
    )]
    fn write(
        mut self,
        file: &str,
        cluster: &Cluster,
        configs: Vec<Config>,
        kubeadm: &[(String, Value)],
    ) -> Imported {
        let mut doc = DocumentMut::new();
        doc["version"] = toml_edit::value(1);
        doc["name"] = toml_edit::value(self.cluster_name(&cluster.name));

        // Secrets already given a variable: (variable, clear value), kept
        // only in memory to reuse a variable for the same password.
        let mut known: Vec<(String, String)> = Vec::new();
        let mut ssh = Table::new();
        let default_port = cluster.ssh.port.unwrap_or(22);
        self.ssh_keys(
            &mut ssh,
            &cluster.ssh,
            cluster.ssh.user.as_deref(),
            "Cluster.spec.ssh",
            "",
            &mut known,
        );
        if !ssh.is_empty() {
            doc["ssh"] = Item::Table(ssh);
        }

        let vars = vars_table(&cluster.env);
        if !vars.is_empty() {
            let mut table = Table::new();
            for (key, value) in &vars {
                table.insert(key, Item::Value(value.clone()));
            }
            table.decor_mut().set_prefix(
                "\n# spec.env: sealos' env, as variables (`${name}` in strings, `{{ name }}` in templates).\n",
            );
            doc["vars"] = Item::Table(table);
        }

        let mut hosts = ArrayOfTables::new();
        let mut seen: Vec<String> = Vec::new();
        for entry in &cluster.hosts {
            let host_ssh = entry.ssh.as_ref().map(|over| cluster.ssh.overlaid(over));
            let port = host_ssh
                .as_ref()
                .and_then(|s| s.port)
                .unwrap_or(default_port);
            for (i, ip) in entry.ips.iter().enumerate() {
                let field = format!("{}.ips[{i}]", entry.field);
                let address = match crate::model::address::parse(ip) {
                    Ok(mut parsed) if parsed.len() == 1 && parsed[0].user.is_none() => {
                        parsed.remove(0)
                    }
                    Ok(_) => {
                        self.warn(field, format!("`{ip}` is not one host's address; left out"));
                        continue;
                    }
                    Err(error) => {
                        self.warn(field, format!("`{ip}`: {error}; left out"));
                        continue;
                    }
                };
                let host_part = if address.host.contains(':') {
                    format!("[{}]", address.host)
                } else {
                    address.host.clone()
                };
                let written = match address.port {
                    Some(p) if p != port => format!("{host_part}:{p}"),
                    _ => host_part,
                };
                let endpoint = format!("{}:{}", address.host, address.port.unwrap_or(port));
                if seen.contains(&endpoint) {
                    self.warn(field, format!("`{ip}` is listed twice; kept once"));
                    continue;
                }
                seen.push(endpoint);
                let mut host = Table::new();
                host["address"] = toml_edit::value(written);
                let mut roles = Array::new();
                for (r, role) in entry.roles.iter().enumerate() {
                    if is_plain_name(role) {
                        roles.push(role.as_str());
                    } else if i == 0 {
                        self.warn(
                            format!("{}.roles[{r}]", entry.field),
                            format!("`{role}` cannot be a cairn role (letters, digits, `-`, `_`, `.`); left out"),
                        );
                    }
                }
                host["roles"] = toml_edit::value(roles);
                if !entry.env.is_empty() {
                    let mut vars = vars_table(&entry.env);
                    vars.fmt();
                    host["vars"] = toml_edit::value(vars);
                }
                if let Some(over) = &entry.ssh {
                    let mut table = Table::new();
                    let suffix = format!(
                        "_{}",
                        address
                            .host
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() {
                                c.to_ascii_uppercase()
                            } else {
                                '_'
                            })
                            .collect::<String>()
                    );
                    let user = host_ssh.as_ref().and_then(|s| s.user.as_deref());
                    self.ssh_keys(
                        &mut table,
                        over,
                        user,
                        &format!("{}.ssh", entry.field),
                        &suffix,
                        &mut known,
                    );
                    // A host that changes the user also changes whether sudo is needed.
                    if over.user.is_some()
                        && let Some(effective) = &host_ssh
                    {
                        let root = effective.user.as_deref().is_none_or(|u| u == "root");
                        table["sudo"] = toml_edit::value(!root);
                        // The cluster's password, now also sudo's here.
                        if !root
                            && over.passwd.is_none()
                            && let Some(passwd) = &effective.passwd
                            && let Some((variable, _)) = known.iter().find(|(_, v)| v == passwd)
                        {
                            table["sudo_password"] = toml_edit::value(secret(variable));
                        }
                    }
                    if !table.is_empty() {
                        let mut inline = table.into_inline_table();
                        inline.fmt();
                        host["ssh"] = toml_edit::value(inline);
                    }
                }
                hosts.push(host);
            }
        }
        let host_count = hosts.len();
        if !hosts.is_empty() {
            doc["hosts"] = Item::ArrayOfTables(hosts);
        }

        let mut bundles = ArrayOfTables::new();
        let mut archives = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, image) in cluster.images.iter().enumerate() {
            let name = unique(bundle_name(image), &names);
            names.push(name.clone());
            let source = format!("{name}.tar");
            let mut bundle = Table::new();
            bundle.decor_mut().set_prefix(format!(
                "\n# {image}: make the archive beside this file with\n# sealos save -o {source} {image}\n"
            ));
            bundle["name"] = toml_edit::value(name.clone());
            bundle["source"] = toml_edit::value(source.clone());
            bundle["image"] = toml_edit::value(image.clone());
            if let Some(kind) = cluster.kind_of(image) {
                bundle["kind"] = toml_edit::value(kind);
                if let Some(mut key) = bundle.key_mut("kind") {
                    key.leaf_decor_mut()
                        .set_prefix("# As sealos recorded it in status.mounts.\n");
                }
            }
            if i == 0 && !cluster.command.is_empty() {
                let cmd = cluster.command.join("\n");
                if cmd.contains("$(") {
                    self.warn(
                        "Cluster.spec.command",
                        "sealos expands `$(NAME)` from the env; cairn runs the command with the bundle's variables in its environment: write `$NAME`",
                    );
                }
                bundle["cmd"] = toml_edit::value(cmd);
                if let Some(mut key) = bundle.key_mut("cmd") {
                    key.leaf_decor_mut().set_prefix(
                        "# spec.command: replaces the first image's CMD, as in sealos.\n",
                    );
                }
            }
            bundles.push(bundle);
            archives.push(ImageArchive {
                source,
                image: image.clone(),
            });
        }
        if cluster.images.is_empty() && !cluster.command.is_empty() {
            self.warn(
                "Cluster.spec.command",
                "replaces an image's CMD, and spec.image is empty; left out",
            );
        }
        if !bundles.is_empty() {
            doc["bundles"] = Item::ArrayOfTables(bundles);
        }

        let mut config_tables = ArrayOfTables::new();
        for config in configs {
            if let Some(table) = self.config_table(&config, cluster, &names) {
                config_tables.push(table);
            }
        }
        if !kubeadm.is_empty() {
            if let Some(rootfs) = cluster.rootfs() {
                let mut data = String::new();
                for (i, (_, document)) in kubeadm.iter().enumerate() {
                    if i > 0 {
                        data.push_str("---\n");
                    }
                    data.push_str(
                        &serde_yaml_ng::to_string(document).expect("a YAML value serializes"),
                    );
                }
                let kinds: Vec<&str> = kubeadm.iter().map(|(kind, _)| kind.as_str()).collect();
                let mut table = Table::new();
                table.decor_mut().set_prefix(format!(
                    "\n# kubeadm's settings ({}): merged into the rootfs's {KUBEADM_PATH},\n# as sealos does; the rootfs is {} ({}).\n",
                    kinds.join(", "),
                    cluster.images[rootfs],
                    if cluster.kind_of(&cluster.images[rootfs]).is_some() {
                        "as status.mounts says"
                    } else {
                        "taken to be the first image"
                    }
                ));
                table["bundle"] = toml_edit::value(names[rootfs].clone());
                table["path"] = toml_edit::value(KUBEADM_PATH);
                table["strategy"] = toml_edit::value("merge");
                table["data"] = toml_edit::value(data);
                config_tables.push(table);
            } else {
                for (kind, _) in kubeadm {
                    self.warn(
                        kind.clone(),
                        "kubeadm's settings patch the rootfs image, and spec.image is empty; left out",
                    );
                }
            }
        }
        let config_count = config_tables.len();
        if !config_tables.is_empty() {
            doc["configs"] = Item::ArrayOfTables(config_tables);
        }

        let clusterfile = format!(
            "{}{}",
            header(file, &self.secrets, &archives, &self.warnings),
            doc
        );
        Imported {
            clusterfile,
            warnings: self.warnings,
            secrets: self.secrets,
            archives,
            hosts: host_count,
            configs: config_count,
        }
    }

    /// The cluster's name, made valid for cairn (it names a folder).
    fn cluster_name(&mut self, name: &str) -> String {
        let valid: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let valid = valid
            .trim_start_matches('.')
            .chars()
            .take(64)
            .collect::<String>();
        let valid = if valid.is_empty() {
            "default".to_string()
        } else {
            valid
        };
        if valid != name {
            self.warn(
                "Cluster.metadata.name",
                format!("`{name}` is not a cairn cluster name (letters, digits, `-`, `_`, `.`): written as `{valid}`"),
            );
        }
        valid
    }

    /// The cairn keys of one sealos `ssh` into `table`; secrets read from
    /// variables named with `suffix` (a host's address) after the
    /// cluster's names. `user` is the login user in effect there: another
    /// than root runs through sudo, answered with the password, as sealos
    /// does.
    fn ssh_keys(
        &mut self,
        table: &mut Table,
        ssh: &Ssh,
        user: Option<&str>,
        field: &str,
        suffix: &str,
        known: &mut Vec<(String, String)>,
    ) {
        if let Some(user) = &ssh.user {
            table["user"] = toml_edit::value(user.as_str());
        }
        if let Some(port) = ssh.port {
            table["port"] = toml_edit::value(i64::from(port));
        }
        if let Some(pk) = &ssh.pk {
            table["identity"] = toml_edit::value(pk.as_str());
        }
        if let Some(passwd) = &ssh.passwd {
            let variable = self.secret(
                &format!("{PASSWORD_VARIABLE}{suffix}"),
                &format!("{field}.passwd"),
                passwd,
                known,
            );
            known.push((variable.clone(), passwd.clone()));
            table["password"] = toml_edit::value(secret(&variable));
            if user.is_some_and(|u| u != "root") {
                table["sudo_password"] = toml_edit::value(secret(&variable));
            }
        }
        if let Some(passphrase) = &ssh.pk_passwd {
            let variable = self.secret(
                &format!("{PASSPHRASE_VARIABLE}{suffix}"),
                &format!("{field}.pkPasswd"),
                passphrase,
                known,
            );
            known.push((variable.clone(), passphrase.clone()));
            table["identity_passphrase"] = toml_edit::value(secret(&variable));
        }
        if suffix.is_empty() && user.is_some_and(|u| u != "root") {
            table["sudo"] = toml_edit::value(true);
        }
    }

    /// A sealos `Config` as a `[[configs]]` entry, or `None` (warned) when
    /// it cannot be one.
    fn config_table(
        &mut self,
        config: &Config,
        cluster: &Cluster,
        names: &[String],
    ) -> Option<Table> {
        let Some(path) = &config.path else {
            self.warn(
                format!("{}.spec.path", config.place),
                "a Config without a path patches nothing; left out",
            );
            return None;
        };
        let mut table = Table::new();
        let mut comment = if config.name.is_empty() {
            "\n# A sealos Config.\n".to_string()
        } else {
            format!("\n# sealos Config `{}`.\n", config.name)
        };
        if let Some(matched) = &config.matched {
            let Some(index) = cluster
                .images
                .iter()
                .position(|image| same_image(image, matched))
            else {
                self.warn(
                    format!("{}.spec.match", config.place),
                    format!("`{matched}` is none of spec.image, so sealos applies this Config to nothing; left out"),
                );
                return None;
            };
            table["bundle"] = toml_edit::value(names[index].clone());
        } else {
            comment.push_str("# No match: every bundle that ships the path.\n");
        }
        table["path"] = toml_edit::value(path.as_str());
        let strategy = match config.strategy.as_deref() {
            Some(s @ ("merge" | "override" | "insert" | "append")) => s,
            None => {
                comment.push_str("# No strategy in sealos: data replaces the file.\n");
                "override"
            }
            Some(other) => {
                self.warn(
                    format!("{}.spec.strategy", config.place),
                    format!("`{other}` is not merge, override, insert or append; sealos then writes data as the whole file: written as override"),
                );
                "override"
            }
        };
        table["strategy"] = toml_edit::value(strategy);
        table["data"] = toml_edit::value(config.data.as_str());
        table.decor_mut().set_prefix(comment);
        Some(table)
    }
}

/// The text of a scalar: strings as they are, numbers and booleans as written.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{ secret = "env:NAME" }`.
fn secret(variable: &str) -> InlineTable {
    let mut table = InlineTable::new();
    table.insert("secret", format!("env:{variable}").into());
    table
}

/// `K=V` lines as variables: a key given more than once becomes a list of
/// its values, as sealos reads it (`CertSANS=a CertSANS=b`).
fn vars_table(env: &[(String, String)]) -> InlineTable {
    let mut order: Vec<&str> = Vec::new();
    for (key, _) in env {
        if !order.contains(&key.as_str()) {
            order.push(key);
        }
    }
    let mut table = InlineTable::new();
    for key in order {
        let values: Vec<&str> = env
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        if let [one] = values[..] {
            table.insert(key, one.into());
        } else {
            table.insert(key, Array::from_iter(values).into());
        }
    }
    table
}

/// A bundle name for an image: its repository's last part
/// (`labring/kubernetes:v1.27.7` → `kubernetes`).
fn bundle_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repository = last.split(':').next().unwrap_or(last);
    let name: String = repository
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "image".to_string()
    } else {
        name
    }
}

/// `name`, or `name-2`, `name-3`... when taken.
fn unique(name: String, taken: &[String]) -> String {
    if !taken.contains(&name) {
        return name;
    }
    // At most `taken.len()` names are taken, so one of these is free.
    (2..=taken.len() + 2)
        .map(|n| format!("{name}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(name)
}

/// Letters, digits, `-`, `_` and `.`: what a cairn role may hold.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The comment the Clusterfile opens with: where it came from, and what
/// to do before using it.
fn header(
    file: &str,
    secrets: &[SecretVariable],
    archives: &[ImageArchive],
    warnings: &[ImportWarning],
) -> String {
    let mut text =
        format!("# Imported from the sealos Clusterfile {file} by cairn import sealos.\n");
    if !secrets.is_empty() {
        text.push_str(
            "#\n# Secrets are read from environment variables; set them before cairn runs:\n",
        );
        for secret in secrets {
            let _ = writeln!(text, "#   {}  ({})", secret.variable, secret.holds);
        }
    }
    if !archives.is_empty() {
        text.push_str("#\n# Each image is read from an archive beside this file:\n");
        for archive in archives {
            let _ = writeln!(
                text,
                "#   sealos save -o {} {}",
                archive.source, archive.image
            );
        }
    }
    if !warnings.is_empty() {
        text.push_str("#\n# Not imported as written (the import warned about each):\n");
        for warning in warnings {
            let _ = writeln!(text, "#   {}: {}", warning.field, warning.message);
        }
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_come_from_the_repository() {
        assert_eq!(bundle_name("labring/kubernetes:v1.27.7"), "kubernetes");
        assert_eq!(bundle_name("docker.io/labring/calico:v3.26.1"), "calico");
        assert_eq!(bundle_name("registry.local:5000/helm@sha256:ab"), "helm");
        assert_eq!(unique("helm".into(), &["helm".into()]), "helm-2");
    }

    #[test]
    fn repeated_env_keys_become_lists() {
        let env = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x".to_string()),
            ("a".to_string(), "2".to_string()),
        ];
        assert_eq!(
            vars_table(&env).to_string(),
            r#"{ a = ["1", "2"], b = "x" }"#
        );
    }

    #[test]
    fn an_unknown_field_is_warned_about_by_its_path() {
        let imported = import(
            "c.yaml",
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: x}\nspec:\n  hosts:\n  - ips: [10.0.0.1]\n    roles: [master]\n    labels: {a: b}\n  provider: BAREMETAL\n",
        )
        .unwrap();
        let fields: Vec<&str> = imported.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            fields,
            ["Cluster.spec.hosts[0].labels", "Cluster.spec.provider"]
        );
    }

    #[test]
    fn a_host_with_a_user_of_its_own_gets_sudo_with_the_password_it_logs_in_with() {
        let imported = import(
            "c.yaml",
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: x}\n\
             spec:\n  ssh: {passwd: same}\n  hosts:\n  - {ips: [10.0.0.1], roles: [master]}\n\
             \x20 - {ips: [10.0.0.2], roles: [node], ssh: {user: ops}}\n\
             \x20 - {ips: ['[fd00::3]:2200'], roles: [node], ssh: {user: ops, passwd: same}}\n",
        )
        .unwrap();
        let doc: toml::Table = toml::from_str(&imported.clusterfile).unwrap();
        let hosts = doc["hosts"].as_array().unwrap();
        let secret = |v: &toml::Value| v["secret"].as_str().unwrap().to_string();
        assert!(hosts[0].get("ssh").is_none());
        assert_eq!(hosts[1]["ssh"]["sudo"].as_bool(), Some(true));
        assert_eq!(
            secret(&hosts[1]["ssh"]["sudo_password"]),
            "env:SEALOS_SSH_PASSWORD"
        );
        // The same password reads the same variable.
        assert_eq!(
            secret(&hosts[2]["ssh"]["password"]),
            "env:SEALOS_SSH_PASSWORD"
        );
        assert_eq!(hosts[2]["address"].as_str(), Some("[fd00::3]:2200"));
        assert_eq!(imported.secrets.len(), 1);
        assert!(
            !imported.clusterfile.contains("same"),
            "{}",
            imported.clusterfile
        );
    }

    #[test]
    fn status_mounts_give_the_kinds_and_the_rootfs() {
        let imported = import(
            "c.yaml",
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: x}\n\
             spec:\n  hosts: [{ips: [10.0.0.1], roles: [master]}]\n  image: [labring/helm:v3.9.4, labring/kubernetes:v1.27.7]\n\
             status:\n  mounts:\n  - {imageName: docker.io/labring/kubernetes:v1.27.7, type: rootfs}\n  - {imageName: labring/helm:v3.9.4, type: application}\n\
             ---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: {podSubnet: 10.244.0.0/16}\n",
        )
        .unwrap();
        let doc: toml::Table = toml::from_str(&imported.clusterfile).unwrap();
        let bundles = doc["bundles"].as_array().unwrap();
        assert_eq!(bundles[0]["kind"].as_str(), Some("app"));
        assert_eq!(bundles[1]["kind"].as_str(), Some("rootfs"));
        assert_eq!(doc["configs"][0]["bundle"].as_str(), Some("kubernetes"));
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    }

    #[test]
    fn no_cluster_and_a_template_are_errors_saying_why() {
        let error = import("c.yaml", "apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert!(error.to_string().contains("no `kind: Cluster`"), "{error}");
        for template in [
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata:\n  name: {{ .Values.name }}\n",
            "kind: Cluster\nspec:\n  hosts:\n    {{- with .Values.masters }}\n    - ips: {{ . | toYaml }}\n    {{- end }}\n",
        ] {
            let error = import("c.yaml", template).unwrap_err();
            assert!(error.to_string().contains("render it first"), "{error}");
        }
    }
}
