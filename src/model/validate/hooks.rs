//! Bundle metadata (`bundle.toml`) into the model: its default vars, its
//! kind and default configs (taken by `elements`), and its hooks, which
//! become steps marked with the [`Hook`] they stand for.
//!
//! A hook is a step so that everything a step has (keys and reasons in the
//! plan, logs, failure handling, `--replace`, `state show`, undo on reset
//! and delete) holds for it without a second path through the executor.
//! Its task is `hook.<bundle>.<name>@host`. Order, as sealos runs them:
//! `check` after the bundle landed, every `init-NAME` after `check`, `init`
//! after those, `cmd` after `init`; `clean` is `init`'s undo and
//! `clean-NAME` `init-NAME`'s, so a reset runs them in the reverse order.
//! Each waits for the earlier ones on its own host, or, where one runs on
//! another host only (`init-registry`), there.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::{Validator, expand_home};
use crate::clusterfile::raw::{RawClusterfile, RawHook};
use crate::diagnostic::Problem;
use crate::model::bundle_toml::{
    self as metadata, BundleMetadata, HOOK_NAMES_HELP, HookName, HookPhase,
};
use crate::model::interp::Interp;
use crate::model::{
    BundleKind, ConfigFormat, ConfigPatch, ConfigStrategy, Dep, DepScope, ElementRef, Hook, HostId,
    Model, PatchStrategy, Step, VarValue,
};

/// The metadata of each raw bundle, by position (`None`: none, or unreadable).
pub(super) type Metadata = Vec<Option<BundleMetadata>>;

/// One hook as it will run: its command and where it came from.
struct HookCommand {
    /// `${}` source text: a Clusterfile override as written, a
    /// `bundle.toml` command escaped (its `${x}` is the shell's, read from
    /// the environment).
    source: String,
    span: Range<usize>,
    /// Whether `bundle.toml` gave it (else the Clusterfile), for messages.
    from_metadata: bool,
}

/// A command of `bundle.toml` as `${}` source: nothing in it is cairn's.
fn escaped(command: &str) -> String {
    command.replace("${", "$${")
}

/// Whether a name can be exported to a shell.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The lines before a hook's command: the scripts folder (the working
/// directory) on `PATH`, and each exported name. Values go through `${}`
/// into a quoted here-document, so they reach the shell as they are,
/// whatever they hold, inside the script fed on stdin (never on a command
/// line), and a change of one is a change of the hook's key.
fn prelude(env: &[String]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("PATH=\"$(pwd):$PATH\"; export PATH\n");
    for name in env {
        let _ = writeln!(
            out,
            "{name}=$(cat <<'__CAIRN_ENV__'\n${{{name}}}\n__CAIRN_ENV__\n); export {name}"
        );
    }
    out
}

impl Validator<'_> {
    /// Reads each bundle's `bundle.toml`; a bad one is a problem at the
    /// bundle's `source`, naming the file and the key.
    pub(super) fn bundle_metadata(&mut self, raw: &RawClusterfile) -> Metadata {
        raw.bundles
            .iter()
            .map(|b| {
                let path = self.base_dir.join(expand_home(b.source.get_ref()));
                // A source that is no bundle is reported by `bundles`.
                let kind = self.sources.kind(&path).ok()?;
                let read = match self.sources.metadata_root(&path, kind, &self.base_dir) {
                    Ok(Some(root)) => metadata::read(&root, false),
                    Ok(None) => metadata::read(&path, true),
                    Err(error) => {
                        self.push(
                            Problem::at(b.source.span(), format!("cannot read the image {error}"))
                                .label("this bundle's image")
                                .help("check the file, or save the image again (`sealos save -o NAME.tar IMAGE`)"),
                        );
                        return None;
                    }
                };
                match read {
                    Ok(meta) => meta,
                    Err(error) => {
                        self.push(
                            Problem::at(b.source.span(), format!("invalid bundle metadata: {error}"))
                                .label("this bundle's bundle.toml")
                                .help("bundle.toml knows `kind`, `cmd`, [vars], [hooks] and [[configs]] (path, strategy, data); fix the file or remove it"),
                        );
                        None
                    }
                }
            })
            .collect()
    }

    /// The bundles' default vars, under `[vars]`: the lowest precedence.
    /// Two bundles giving one name different defaults is a problem (which
    /// would win is not obvious): `[vars]` settles it.
    pub(super) fn bundle_var_defaults(
        &mut self,
        raw: &RawClusterfile,
        metadata: &Metadata,
    ) -> BTreeMap<String, VarValue> {
        let mut defaults: BTreeMap<String, (toml::Value, usize)> = BTreeMap::new();
        for (i, meta) in metadata.iter().enumerate() {
            let Some(meta) = meta else { continue };
            for (name, value) in &meta.vars {
                let reserved = ["cluster", "host", "roles", "bundle"]
                    .iter()
                    .any(|r| name == r || name.starts_with(&format!("{r}.")));
                if reserved {
                    self.push(
                        Problem::at(
                            raw.bundles[i].source.span(),
                            format!(
                                "bundle.toml of `{}` declares `{name}`, a built-in variable",
                                raw.bundles[i].name.get_ref()
                            ),
                        )
                        .label("this bundle's bundle.toml")
                        .help("rename the variable in the bundle's [vars]"),
                    );
                    continue;
                }
                match defaults.get(name) {
                    Some((other, j)) if other != value && !raw.vars.contains_key(name) => {
                        self.push(
                            Problem::at(raw.bundles[i].source.span(), format!(
                                "bundles `{}` and `{}` give `{name}` different defaults ({other} and {value})",
                                raw.bundles[*j].name.get_ref(),
                                raw.bundles[i].name.get_ref()
                            ))
                            .label("second default")
                            .help(format!("set `{name}` in the Clusterfile's [vars], which wins over both")),
                        );
                    }
                    Some(_) => {}
                    None => {
                        defaults.insert(name.clone(), (value.clone(), i));
                    }
                }
            }
        }
        defaults
            .into_iter()
            .map(|(name, (value, _))| (name, VarValue::Plain(value)))
            .collect()
    }

    /// A bundle's default configs, checked as `[[configs]]` are; they come
    /// first in its list, so the Clusterfile's own apply over them.
    pub(super) fn default_configs(
        &mut self,
        meta: &BundleMetadata,
        source: &std::path::Path,
        bundle: &str,
        span: &Range<usize>,
    ) -> Vec<ConfigPatch> {
        let mut out = Vec::new();
        for c in &meta.configs {
            let path = &c.path;
            if source.is_dir() && c.strategy != ConfigStrategy::Override {
                let plain = source.join(path);
                let template = source.join(format!("{path}.tmpl"));
                if !plain.is_file() && !template.is_file() {
                    self.push(
                        Problem::at(span.clone(), format!("bundle.toml of `{bundle}` patches `{path}`, which the bundle does not have"))
                            .label("this bundle's bundle.toml")
                            .help("only `override` may create a file; fix the path in its [[configs]]"),
                    );
                    continue;
                }
            }
            let strategy = match c.strategy {
                ConfigStrategy::Merge => {
                    if let Some(format) = ConfigFormat::of_path(path) {
                        PatchStrategy::Merge(format)
                    } else {
                        self.push(
                            Problem::at(span.clone(), format!("bundle.toml of `{bundle}` merges into `{path}`: unknown format"))
                                .label("this bundle's bundle.toml")
                                .help("merge works on YAML, JSON and TOML files; use `override`, `insert` or `append` for others"),
                        );
                        continue;
                    }
                }
                ConfigStrategy::Override => PatchStrategy::Override,
                ConfigStrategy::Insert => PatchStrategy::Insert,
                ConfigStrategy::Append => PatchStrategy::Append,
            };
            out.push(ConfigPatch {
                path: path.clone(),
                strategy,
                data: c.data.clone(),
                only_if_shipped: false,
                span: span.clone(),
            });
        }
        out
    }

    /// Every bundle's hooks, made into steps after the Clusterfile's own.
    pub(super) fn hooks(&mut self, raw: &RawClusterfile, model: &mut Model, metadata: &Metadata) {
        for (i, b) in raw.bundles.iter().enumerate() {
            let Some(bundle) = model.bundles.get(i) else {
                continue;
            };
            let meta = metadata.get(i).and_then(Option::as_ref);
            let span = bundle.span.clone();
            let mut hooks: BTreeMap<String, HookCommand> = BTreeMap::new();
            if let Some(meta) = meta {
                for (name, command) in &meta.hooks {
                    hooks.insert(
                        name.clone(),
                        HookCommand {
                            source: escaped(command),
                            span: span.clone(),
                            from_metadata: true,
                        },
                    );
                }
            }
            let mut disabled = Vec::new();
            for (name, value) in &b.hooks {
                let key_span = self.key_span(name, &value.span());
                if HookName::parse(name).is_none() {
                    let help = if name == "cmd" {
                        "`cmd` is a key of the bundle itself: `cmd = \"...\"` (or `cmd = false`) beside `hooks`".to_string()
                    } else {
                        HOOK_NAMES_HELP.to_string()
                    };
                    self.push(
                        Problem::at(key_span, format!("unknown hook `{name}`"))
                            .label("not a hook name")
                            .help(help),
                    );
                    continue;
                }
                match value.get_ref() {
                    RawHook::Disabled(_) => {
                        hooks.remove(name);
                        disabled.push(name.clone());
                    }
                    RawHook::Command(command) => {
                        if let Some(command) =
                            self.hook_command(&Spanned::new(value.span(), command.clone()))
                        {
                            hooks.insert(name.clone(), command);
                        }
                    }
                }
            }
            let cmd = match &b.cmd {
                Some(value) => match value.get_ref() {
                    RawHook::Disabled(_) => None,
                    RawHook::Command(command) => {
                        self.hook_command(&Spanned::new(value.span(), command.clone()))
                    }
                },
                None => meta.and_then(|m| m.cmd.as_ref()).map(|c| HookCommand {
                    source: escaped(c),
                    span: span.clone(),
                    from_metadata: true,
                }),
            };
            // A clean hook undoes its init hook: it needs one, unless the
            // Clusterfile disabled that init (then nothing is left to undo).
            let mut undos: BTreeMap<String, HookCommand> = BTreeMap::new();
            let names: Vec<String> = hooks.keys().cloned().collect();
            for name in names {
                if let Some(HookName::Undo(init)) = HookName::parse(&name) {
                    let command = hooks.remove(&name).expect("listed above");
                    if hooks.contains_key(&init) {
                        undos.insert(init, command);
                    } else if !disabled.contains(&init) {
                        let whose = if command.from_metadata {
                            format!("bundle.toml of bundle `{}`", bundle.name)
                        } else {
                            format!("bundle `{}`", bundle.name)
                        };
                        self.push(
                            Problem::at(command.span.clone(), format!("{whose} has hook `{name}` but no `{init}` for it to undo"))
                                .label("nothing to undo")
                                .help(format!("`{name}` runs as the undo of `{init}` (on reset, delete, or when the bundle leaves): add `{init}`, or disable `{name}` with `{name} = false`")),
                        );
                    }
                }
            }
            self.push_hooks(model, i, hooks, undos, cmd, meta);
        }
    }

    /// A hook's command from the Clusterfile, `${}` parsed (and so checked).
    fn hook_command(&mut self, value: &Spanned<String>) -> Option<HookCommand> {
        if value.get_ref().trim().is_empty() {
            self.push(
                Problem::at(value.span(), "the hook's command is empty")
                    .label("nothing to run")
                    .help("write the shell command to run, or `false` to disable the hook"),
            );
            return None;
        }
        self.interp(value).map(|_| HookCommand {
            source: value.get_ref().clone(),
            span: value.span(),
            from_metadata: false,
        })
    }

    fn push_hooks(
        &mut self,
        model: &mut Model,
        bundle: usize,
        hooks: BTreeMap<String, HookCommand>,
        mut undos: BTreeMap<String, HookCommand>,
        cmd: Option<HookCommand>,
        meta: Option<&BundleMetadata>,
    ) {
        let b = &model.bundles[bundle];
        let env: Vec<String> = meta
            .map(|m| m.vars.keys().filter(|n| is_env_name(n)).cloned().collect())
            .unwrap_or_default();
        let prelude = prelude(&env);
        let cwd = scripts_dir(b, &self.base_dir);
        let registry = registry_host(model, &b.hosts);
        let first_master = first_master(model, &b.hosts);
        let mut ordered: Vec<(HookPhase, String, HookCommand)> = hooks
            .into_iter()
            .map(|(name, command)| {
                let Some(HookName::Run(phase)) = HookName::parse(&name) else {
                    unreachable!("undo hooks were set apart")
                };
                (phase, name, command)
            })
            .collect();
        if let Some(cmd) = cmd {
            ordered.push((HookPhase::Cmd, "cmd".into(), cmd));
        }
        ordered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut earlier: Vec<(HookPhase, usize)> = Vec::new();
        for (phase, name, command) in ordered {
            let b = &model.bundles[bundle];
            let hosts: Vec<HostId> = match name.as_str() {
                "init-registry" => registry.into_iter().collect(),
                "cmd" if b.kind == BundleKind::App => first_master.into_iter().collect(),
                _ => b.hosts.clone(),
            };
            let mut after = vec![Dep {
                element: ElementRef::Bundle(bundle),
                scope: DepScope::SameHostElseAll,
                span: b.span.clone(),
            }];
            after.extend(
                earlier
                    .iter()
                    .filter(|(p, _)| *p < phase)
                    .map(|(_, step)| Dep {
                        element: ElementRef::Step(*step),
                        scope: DepScope::SameHostElseAll,
                        span: b.span.clone(),
                    }),
            );
            let undo = undos.remove(&name);
            let parse = |source: &str| Interp::parse(source).expect("checked, prelude well-formed");
            let step = Step {
                name: format!("{}.{name}", b.name),
                hosts,
                run: parse(&format!("{prelude}{}", command.source)),
                cwd: Some(parse(&cwd)),
                check: None,
                undo: undo
                    .as_ref()
                    .map(|u| parse(&format!("{prelude}{}", u.source))),
                capture: None,
                capture_secret: false,
                timeout: None,
                retries: 0,
                once: false,
                serial: None,
                after,
                span: command.span.clone(),
                hook: Some(Hook {
                    bundle,
                    name,
                    env: env.clone(),
                    command: command.source,
                    undo_command: undo.map(|u| u.source),
                }),
            };
            let index = model.steps.len();
            model.steps.push(step);
            model.bundles[bundle].hooks.push(index);
            earlier.push((phase, index));
        }
    }
}

/// Where a bundle's hooks run: its `scripts/` folder (its root when a
/// folder bundle has none; absolute on this machine when the dest is
/// relative, as the bundle's files land there).
fn scripts_dir(bundle: &crate::model::Bundle, base_dir: &std::path::Path) -> String {
    let dest = bundle.dest.source.trim_end_matches('/');
    let relative = !(dest.starts_with('/') || dest.starts_with("${") || dest.starts_with('~'));
    let dest = if relative {
        escaped(&base_dir.join(dest).to_string_lossy())
    } else {
        dest.to_string()
    };
    if bundle.source_kind != crate::model::SourceKind::Directory
        || bundle.source.join("scripts").is_dir()
    {
        format!("{dest}/scripts")
    } else {
        dest
    }
}

/// The registry host among a bundle's hosts: the first with role
/// `registry`, else the first `master`, else the first.
fn registry_host(model: &Model, hosts: &[HostId]) -> Option<HostId> {
    let with_role = |role: &str| {
        hosts
            .iter()
            .copied()
            .find(|h| model.host(*h).roles.iter().any(|r| r == role))
    };
    with_role("registry")
        .or_else(|| with_role("master"))
        .or_else(|| hosts.first().copied())
}

/// The first `master` among a bundle's hosts, else its first host.
fn first_master(model: &Model, hosts: &[HostId]) -> Option<HostId> {
    hosts
        .iter()
        .copied()
        .find(|h| model.host(*h).roles.iter().any(|r| r == "master"))
        .or_else(|| hosts.first().copied())
}
