//! The elements: `[[bundles]]` (with the `[[configs]]` that patch them),
//! `[[files]]` and `[[steps]]`, each turned into its model type.
//!
//! An element is always pushed, even when parts of it are invalid: its
//! problems are recorded and the invalid parts replaced by neutral values,
//! so indexes stay those of the file (`after` references were resolved
//! against them) and the whole-file checks can still run on it.

use std::path::PathBuf;

use toml::Spanned;

use super::references::Names;
use super::{Validator, expand_home};
use crate::clusterfile::raw::{RawClusterfile, RawConfig};
use crate::diagnostic::Problem;
use crate::model::image_ref::same_image;
use crate::model::interp::{self, Interp};
use crate::model::{
    BUILTINS, Bundle, BundleKind, ConfigFormat, ConfigPatch, ConfigStrategy, FileSource, FileSpec,
    Model, PatchStrategy, SourceKind, Step,
};
use crate::words::closest;

impl Validator<'_> {
    /// A local source, relative to the Clusterfile's folder; it must exist.
    fn source_path(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let path = self.base_dir.join(expand_home(value.get_ref()));
        if path.exists() {
            Some(path)
        } else {
            self.push(
                Problem::at(
                    value.span(),
                    format!("source `{}` does not exist", value.get_ref()),
                )
                .label("not found")
                .help(format!(
                    "paths are relative to the Clusterfile's folder ({})",
                    self.base_dir.display()
                )),
            );
            None
        }
    }

    /// Bundles, then configs: a config names its bundle, and a merge must
    /// know the file's format, so bundles come first.
    /// A bundle's `bundle.toml` (`metadata`) gives its kind when the
    /// Clusterfile does not, and its default configs, first in its list.
    pub(super) fn bundles(
        &mut self,
        raw: &RawClusterfile,
        model: &mut Model,
        names: &Names,
        metadata: &super::hooks::Metadata,
    ) {
        for (i, b) in raw.bundles.iter().enumerate() {
            let meta = metadata.get(i).and_then(Option::as_ref);
            let name = b.name.get_ref().clone();
            let hosts = self.selectors(b.on.as_ref(), &model.hosts);
            let kind = b
                .kind
                .as_ref()
                .map(|k| *k.get_ref())
                .or(meta.and_then(|m| m.kind))
                .unwrap_or(BundleKind::Rootfs);
            let hosts = if kind == BundleKind::App {
                hosts.into_iter().take(1).collect()
            } else {
                hosts
            };
            let source = self.source_path(&b.source);
            let mut source_kind = SourceKind::Directory;
            if let Some(path) = &source {
                match self.sources.kind(path) {
                    Ok(kind) => source_kind = kind,
                    Err(what) => self.push(
                        Problem::at(
                            b.source.span(),
                            format!("bundle source `{}` {what}", b.source.get_ref()),
                        )
                        .label("not a bundle")
                        .help(
                            "point `source` at a folder of files, a .tar.zst of one (`cairn bundle pack`), or an image saved as an OCI or docker archive (`sealos save -o NAME.tar IMAGE`) or an OCI layout folder",
                        ),
                    ),
                }
            }
            let default_dest = match kind {
                BundleKind::App => format!("/var/lib/cairn/${{cluster}}/apps/{name}"),
                _ => "/var/lib/cairn/${cluster}/rootfs".to_string(),
            };
            let dest_raw = b
                .dest
                .clone()
                .unwrap_or_else(|| Spanned::new(b.name.span(), default_dest));
            let dest = self.interp(&dest_raw);
            let mut templates = Vec::new();
            for pattern in &b.templates {
                match globset::Glob::new(pattern.get_ref()) {
                    Ok(_) => templates.push(pattern.get_ref().clone()),
                    Err(error) => self.push(
                        Problem::at(
                            pattern.span(),
                            format!("invalid glob `{}`: {}", pattern.get_ref(), error.kind()),
                        )
                        .label("bad pattern")
                        .help("globs look like `etc/**/*.tmpl`"),
                    ),
                }
            }
            let after = self.after(&b.after, names, &model.hosts, &name);
            {
                let source = source.unwrap_or_else(|| self.base_dir.join(b.source.get_ref()));
                let dest = dest.unwrap_or_else(|| Interp::literal(dest_raw.get_ref()));
                let configs = meta.map_or_else(Vec::new, |m| {
                    self.default_configs(m, &source, &name, &b.source.span())
                });
                model.bundles.push(Bundle {
                    name,
                    source,
                    source_kind,
                    kind,
                    hosts,
                    dest,
                    dest_span: dest_raw.span(),
                    templates,
                    configs,
                    after,
                    span: b.name.span(),
                    image: b.image.as_ref().map(|i| i.get_ref().clone()),
                    hooks: Vec::new(),
                });
            }
        }
    }

    /// `[[configs]]` patch a bundle's file: a path inside the bundle, a file
    /// that exists there (only `override` may create one), and for `merge` a
    /// format cairn can merge, resolved here once. `bundle` names the bundle,
    /// `match` names one or compares with the bundles' images (sealos'
    /// `match`); with neither, the patch goes to every bundle that ships the
    /// path.
    pub(super) fn configs(&mut self, raw: &RawClusterfile, model: &mut Model) {
        for c in &raw.configs {
            let Some(selected) = self.config_selection(c, raw, model) else {
                continue;
            };
            let path = c.path.get_ref().trim_start_matches("./").to_string();
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
                self.push(
                    Problem::at(
                        c.path.span(),
                        format!("invalid config path `{}`", c.path.get_ref()),
                    )
                    .label("not a path inside the bundle")
                    .help(
                        "write the file's path relative to the bundle root, e.g. `etc/kubeadm.yml`",
                    ),
                );
                continue;
            }
            let strategy = c
                .strategy
                .as_ref()
                .map_or(ConfigStrategy::Merge, |s| *s.get_ref());
            let targets = match selected {
                ConfigSelection::Bundles(indexes) => {
                    let mut targets = Vec::new();
                    for index in indexes {
                        let bundle = &model.bundles[index];
                        if strategy != ConfigStrategy::Override
                            && ships_file(bundle, &path) == Some(false)
                        {
                            self.push(
                                Problem::at(c.path.span(), format!("bundle `{}` has no file `{path}`", bundle.name))
                                    .label("not in the bundle")
                                    .help("only `override` may create a file; check the path (templates are named without `.tmpl`)"),
                            );
                            continue;
                        }
                        targets.push((index, false));
                    }
                    targets
                }
                ConfigSelection::Shipping => {
                    // A folder says now whether it ships the file; an
                    // archive says so only when it is unpacked, so the
                    // patch goes to it only if it does.
                    let targets: Vec<(usize, bool)> = model
                        .bundles
                        .iter()
                        .enumerate()
                        .filter_map(|(index, bundle)| match ships_file(bundle, &path) {
                            Some(true) => Some((index, false)),
                            Some(false) => None,
                            None => Some((index, true)),
                        })
                        .collect();
                    if targets.is_empty() {
                        self.push(
                            Problem::at(c.path.span(), format!("no bundle ships `{path}`"))
                                .label("in no bundle")
                                .help("a patch without `bundle` or `match` goes to every bundle that has the file; check the path (templates are named without `.tmpl`), or name the bundle with `bundle = \"NAME\"`"),
                        );
                        continue;
                    }
                    targets
                }
            };
            if targets.is_empty() {
                continue;
            }
            let strategy = match strategy {
                ConfigStrategy::Merge => {
                    if let Some(format) = ConfigFormat::of_path(&path) {
                        PatchStrategy::Merge(format)
                    } else {
                        self.push(
                        Problem::at(c.path.span(), format!("cannot merge into `{path}`: unknown format"))
                            .label("not .yaml, .yml, .json or .toml")
                            .help("merge works on YAML, JSON and TOML files; use `override`, `insert` or `append` for others"),
                    );
                        continue;
                    }
                }
                ConfigStrategy::Override => PatchStrategy::Override,
                ConfigStrategy::Insert => PatchStrategy::Insert,
                ConfigStrategy::Append => PatchStrategy::Append,
            };
            for (index, only_if_shipped) in targets {
                model.bundles[index].configs.push(ConfigPatch {
                    path: path.clone(),
                    strategy,
                    data: c.data.get_ref().clone(),
                    only_if_shipped,
                    span: c.data.span(),
                });
            }
        }
    }

    /// Which bundles a config names: `bundle` (one, by name), `match` (a
    /// name, or every bundle of that image), or neither (decided by the
    /// path). `None`: the config is invalid, as reported.
    fn config_selection(
        &mut self,
        c: &RawConfig,
        raw: &RawClusterfile,
        model: &Model,
    ) -> Option<ConfigSelection> {
        match (&c.bundle, &c.match_) {
            (Some(bundle), Some(_)) => {
                self.push(
                    Problem::at(bundle.span(), "a config has `bundle` or `match`, not both")
                        .label("and `match` too")
                        .help("`bundle` names one bundle; `match` names a bundle or an image: keep one"),
                );
                None
            }
            (None, None) => Some(ConfigSelection::Shipping),
            (Some(bundle), None) => {
                if let Some(index) = model
                    .bundles
                    .iter()
                    .position(|b| &b.name == bundle.get_ref())
                {
                    return Some(ConfigSelection::Bundles(vec![index]));
                }
                let mut help = "`bundle` names a [[bundles]] entry".to_string();
                if let Some(close) = closest(
                    bundle.get_ref(),
                    raw.bundles.iter().map(|b| b.name.get_ref()),
                ) {
                    help = format!("did you mean `{close}`? {help}");
                }
                if !raw
                    .bundles
                    .iter()
                    .any(|b| b.name.get_ref() == bundle.get_ref())
                    && !self.recovered.hides_element(bundle.get_ref())
                {
                    self.push(
                        Problem::at(
                            bundle.span(),
                            format!("unknown bundle `{}`", bundle.get_ref()),
                        )
                        .label("not defined")
                        .help(help),
                    );
                }
                None
            }
            (None, Some(matched)) => {
                let wanted = matched.get_ref();
                let by_name: Vec<usize> = model
                    .bundles
                    .iter()
                    .position(|b| &b.name == wanted)
                    .into_iter()
                    .collect();
                let indexes = if by_name.is_empty() {
                    model
                        .bundles
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| {
                            bundle_image(b).is_some_and(|image| same_image(image, wanted))
                        })
                        .map(|(index, _)| index)
                        .collect()
                } else {
                    by_name
                };
                if !indexes.is_empty() {
                    return Some(ConfigSelection::Bundles(indexes));
                }
                if !raw.bundles.iter().any(|b| b.name.get_ref() == wanted)
                    && !self.recovered.hides_element(wanted)
                {
                    let mut help =
                        "`match` names a [[bundles]] entry, or an image a bundle's `image` gives"
                            .to_string();
                    if let Some(close) =
                        closest(wanted, raw.bundles.iter().map(|b| b.name.get_ref()))
                    {
                        help = format!("did you mean `{close}`? {help}");
                    }
                    self.push(
                        Problem::at(
                            matched.span(),
                            format!("no bundle is named `{wanted}` or has that image"),
                        )
                        .label("matches no bundle")
                        .help(help),
                    );
                }
                None
            }
        }
    }

    /// Files come from a local `source` or inline `content`, never both.
    /// Inline content is `${}`-interpolated unless the file is a template,
    /// whose `{{ }}` minijinja renders later.
    #[expect(
        clippy::too_many_lines,
        reason = "one pass over `[[files]]`, each key checked in the order a file entry reads"
    )]
    pub(super) fn files(&mut self, raw: &RawClusterfile, model: &mut Model, names: &Names) {
        for f in &raw.files {
            let name = f
                .name
                .as_ref()
                .map_or_else(|| f.dest.get_ref().clone(), |n| n.get_ref().clone());
            let hosts = self.selectors(f.on.as_ref(), &model.hosts);
            let source = match (&f.source, &f.content) {
                (Some(path), None) => self.source_path(path).map(|p| {
                    if p.is_dir() {
                        self.problems.push(
                            Problem::at(
                                path.span(),
                                format!("`{}` is a directory", path.get_ref()),
                            )
                            .label("not a file")
                            .help("ship directories as a [[bundles]] entry"),
                        );
                    }
                    FileSource::Path(p)
                }),
                (None, Some(content)) if f.template => {
                    Some(FileSource::Inline(Interp::literal(content)))
                }
                (None, Some(content)) => {
                    let span = f.dest.span();
                    match Interp::parse(content) {
                        Ok(i) => Some(FileSource::Inline(i)),
                        Err(error) => {
                            self.push(
                                Problem::at(span, format!("in `content`: {}", error.message))
                                    .label("in this file's content"),
                            );
                            None
                        }
                    }
                }
                (Some(path), Some(_)) => {
                    self.push(
                        Problem::at(path.span(), "both `source` and `content` are set")
                            .label("one too many")
                            .help(
                                "keep `source` (a local file) or `content` (inline text), not both",
                            ),
                    );
                    None
                }
                (None, None) => {
                    self.push(
                        Problem::at(
                            f.dest.span(),
                            format!("file `{name}` has neither `source` nor `content`"),
                        )
                        .label("what goes here?")
                        .help("add `source = \"path/to/file\"` or `content = \"...\"`"),
                    );
                    None
                }
            };
            let mode = match &f.mode {
                None => Some(0o644),
                Some(m) => match u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8) {
                    Ok(mode) if mode <= 0o7777 => Some(mode),
                    _ => {
                        self.push(
                            Problem::at(m.span(), format!("invalid mode `{}`", m.get_ref()))
                                .label("not an octal mode")
                                .help("write the mode as an octal string, e.g. \"0640\""),
                        );
                        None
                    }
                },
            };
            if let Some(owner) = &f.owner {
                let o = owner.get_ref();
                let ok = !o.is_empty()
                    && o.split(':').count() <= 2
                    && o.split(':').all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    });
                if !ok {
                    self.push(
                        Problem::at(owner.span(), format!("invalid owner `{o}`"))
                            .label("not user[:group]")
                            .help("write `user` or `user:group`, e.g. \"root:root\""),
                    );
                }
            }
            let dest = self
                .interp(&f.dest)
                .unwrap_or_else(|| Interp::literal(f.dest.get_ref()));
            let after = self.after(&f.after, names, &model.hosts, &name);
            {
                let source = source.unwrap_or_else(|| FileSource::Inline(Interp::literal("")));
                let mode = mode.unwrap_or(0o644);
                model.files.push(FileSpec {
                    name,
                    source,
                    dest,
                    dest_span: f.dest.span(),
                    template: f.template,
                    mode,
                    owner: f.owner.as_ref().map(|o| o.get_ref().clone()),
                    hosts,
                    after,
                    span: f
                        .name
                        .as_ref()
                        .map(toml::Spanned::span)
                        .unwrap_or(f.dest.span()),
                });
            }
        }
    }

    /// A step's `serial`: how many of its hosts run at a time, 1 or more.
    fn serial(&mut self, n: &Spanned<i64>) -> Option<usize> {
        match usize::try_from(*n.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.push(
                    Problem::at(n.span(), format!("invalid serial {}", n.get_ref()))
                        .label("not a count of hosts")
                        .help("serial is how many of the step's hosts run at a time: 1 or more"),
                );
                None
            }
        }
    }

    /// A step's `capture_secret`, which only means something beside a `capture`.
    fn capture_secret(&mut self, step: &crate::clusterfile::raw::RawStep) -> bool {
        match (&step.capture_secret, &step.capture) {
            (Some(secret), None) if *secret.get_ref() => {
                self.push(
                    Problem::at(secret.span(), "`capture_secret` without `capture`")
                        .label("nothing is captured")
                        .help("add `capture = \"NAME\"` to name the value this step prints"),
                );
                false
            }
            (Some(secret), _) => *secret.get_ref(),
            (None, _) => false,
        }
    }

    /// Steps, and the captures they declare (`model.captures`), which
    /// `whole_file` then checks every `${}` against.
    pub(super) fn steps(&mut self, raw: &RawClusterfile, model: &mut Model, names: &Names) {
        for s in &raw.steps {
            let name = s.name.get_ref().clone();
            let hosts = self.selectors(s.on.as_ref(), &model.hosts);
            let run = self.interp(&s.run);
            if s.run.get_ref().trim().is_empty() {
                self.push(
                    Problem::at(s.run.span(), "`run` is empty")
                        .label("nothing to run")
                        .help("write the shell command to run"),
                );
            }
            let cwd = s.cwd.as_ref().map(|c| self.interp(c));
            let check = s.check.as_ref().map(|c| self.interp(c));
            let undo = s.undo.as_ref().map(|c| self.interp(c));
            let timeout = s.timeout.as_ref().map(|t| self.duration(t, "timeout"));
            let retries = match &s.retries {
                None => Some(0),
                Some(r) => match u32::try_from(*r.get_ref()) {
                    Ok(n) if n <= 100 => Some(n),
                    _ => {
                        self.push(
                            Problem::at(r.span(), format!("invalid retries {}", r.get_ref()))
                                .label("out of range")
                                .help("retries is a count from 0 to 100"),
                        );
                        None
                    }
                },
            };
            let serial = s.serial.as_ref().and_then(|n| self.serial(n));
            let capture = s.capture.as_ref().and_then(|c| {
                let cname = c.get_ref();
                if !interp::is_var_name(cname) {
                    self.unresolved_vars.insert(cname.clone());
                    self.push(
                        Problem::at(c.span(), format!("invalid capture name `{cname}`"))
                            .label("not a variable name"),
                    );
                    return None;
                }
                if model.vars.contains_key(cname)
                    || model.hosts.iter().any(|h| h.vars.contains_key(cname))
                    || BUILTINS.contains(&cname.as_str())
                {
                    self.push(
                        Problem::at(
                            c.span(),
                            format!("capture `{cname}` has the name of a variable"),
                        )
                        .label("already a variable")
                        .help("give the capture a name no variable uses"),
                    );
                    return None;
                }
                if let Some(&other) = model.captures.get(cname) {
                    self.push(
                        Problem::at(c.span(), format!("`{cname}` is captured twice"))
                            .label("second capture")
                            .help(format!(
                                "step `{}` captures it already; use another name",
                                raw.steps[other].name.get_ref()
                            )),
                    );
                    return None;
                }
                Some(cname.clone())
            });
            let capture_secret = self.capture_secret(s);
            let after = self.after(&s.after, names, &model.hosts, &name);
            if let Some(c) = &capture {
                model.captures.insert(c.clone(), model.steps.len());
            }
            // Invalid parts become neutral values: their problems are recorded,
            // and the step stays in place so indexes match `after` references.
            let run = run.unwrap_or_else(|| Interp::literal(s.run.get_ref()));
            let cwd = cwd.flatten();
            let check = check.flatten();
            let undo = undo.flatten();
            let timeout = timeout.flatten();
            let retries = retries.unwrap_or(0);
            model.steps.push(Step {
                name,
                hosts,
                run,
                cwd,
                check,
                undo,
                capture_secret,
                capture,
                timeout,
                retries,
                once: s.once,
                serial,
                after,
                span: s.name.span(),
                hook: None,
            });
        }
    }
}

/// The bundles a config patches, before its path is checked against them.
enum ConfigSelection {
    /// Named by `bundle`, or by `match`.
    Bundles(Vec<usize>),
    /// Neither: every bundle that ships the path.
    Shipping,
}

/// Whether `bundle` ships the file at `path` (a template counts by the name
/// it renders to); `None` for an archive, which says so only once unpacked.
fn ships_file(bundle: &Bundle, path: &str) -> Option<bool> {
    if bundle.source_kind != SourceKind::Directory || !bundle.source.is_dir() {
        return None;
    }
    Some(bundle.source.join(path).is_file() || bundle.source.join(format!("{path}.tmpl")).is_file())
}

/// The image reference a bundle was made from (its `image` key), if given.
fn bundle_image(bundle: &Bundle) -> Option<&str> {
    bundle.image.as_deref()
}

#[cfg(test)]
mod config_tests {
    use std::path::Path;
    use std::sync::Arc;

    use crate::diagnostic::{Problems, SourceFile};
    use crate::model::Model;

    /// Two folder bundles: `k8s` ships `etc/kubeadm.yml`, `helm` ships
    /// `etc/values.yaml` and `etc/kubeadm.yml`.
    fn bundles(dir: &Path) {
        for (bundle, files) in [
            ("k8s", &["etc/kubeadm.yml"][..]),
            ("helm", &["etc/values.yaml", "etc/kubeadm.yml"][..]),
        ] {
            for file in files {
                let path = dir.join(bundle).join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, "a: 1\n").unwrap();
            }
        }
    }

    fn load(configs: &str) -> Result<Arc<Model>, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        bundles(dir.path());
        let text = format!(
            "version = 1\nname = \"t\"\n[[hosts]]\naddress = \"127.0.0.1\"\ntransport = \"local\"\n\
             [[bundles]]\nname = \"k8s\"\nsource = \"k8s\"\ndest = \"out/k8s\"\n\
             [[bundles]]\nname = \"helm\"\nsource = \"helm\"\ndest = \"out/helm\"\n{configs}"
        );
        let source = SourceFile {
            path: dir.path().join("Clusterfile"),
            text: Arc::new(text),
        };
        let mut problems = Problems::default();
        let (raw, recovered) = crate::clusterfile::parse(&source, &mut problems).expect("parses");
        let model = crate::model::validate(&source, &raw, &recovered, &mut problems);
        match model {
            Some(model) if problems.is_empty() => Ok(Arc::new(model)),
            _ => Err(problems.0.iter().map(|p| p.message.clone()).collect()),
        }
    }

    fn patched(model: &Model) -> Vec<(String, String)> {
        model
            .bundles
            .iter()
            .flat_map(|b| b.configs.iter().map(|c| (b.name.clone(), c.path.clone())))
            .collect()
    }

    #[test]
    fn match_names_a_bundle() {
        let model =
            load("[[configs]]\nmatch = \"helm\"\npath = \"etc/kubeadm.yml\"\ndata = \"b: 2\"\n")
                .unwrap();
        assert_eq!(patched(&model), [("helm".into(), "etc/kubeadm.yml".into())]);
    }

    #[test]
    fn without_bundle_or_match_every_bundle_that_ships_the_path_is_patched() {
        let model = load("[[configs]]\npath = \"etc/kubeadm.yml\"\ndata = \"b: 2\"\n").unwrap();
        assert_eq!(
            patched(&model),
            [
                ("k8s".into(), "etc/kubeadm.yml".into()),
                ("helm".into(), "etc/kubeadm.yml".into())
            ]
        );
        let model = load("[[configs]]\npath = \"etc/values.yaml\"\ndata = \"b: 2\"\n").unwrap();
        assert_eq!(patched(&model), [("helm".into(), "etc/values.yaml".into())]);
        assert!(
            model
                .bundles
                .iter()
                .flat_map(|b| &b.configs)
                .all(|c| !c.only_if_shipped)
        );
    }

    #[test]
    fn a_path_no_bundle_ships_is_an_error() {
        let problems =
            load("[[configs]]\npath = \"etc/nothing.yaml\"\ndata = \"b: 2\"\n").unwrap_err();
        assert_eq!(problems, ["no bundle ships `etc/nothing.yaml`"]);
    }

    #[test]
    fn a_match_of_nothing_and_bundle_with_match_are_errors() {
        let problems = load(
            "[[configs]]\nmatch = \"labring/calico:v3.26.1\"\npath = \"etc/values.yaml\"\ndata = \"b: 2\"\n",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["no bundle is named `labring/calico:v3.26.1` or has that image"]
        );
        let problems = load(
            "[[configs]]\nbundle = \"helm\"\nmatch = \"helm\"\npath = \"etc/values.yaml\"\ndata = \"b: 2\"\n",
        )
        .unwrap_err();
        assert_eq!(problems, ["a config has `bundle` or `match`, not both"]);
    }

    #[test]
    fn a_matched_bundle_must_ship_the_file_unless_overridden() {
        let problems =
            load("[[configs]]\nmatch = \"k8s\"\npath = \"etc/values.yaml\"\ndata = \"b: 2\"\n")
                .unwrap_err();
        assert_eq!(problems, ["bundle `k8s` has no file `etc/values.yaml`"]);
        let model = load(
            "[[configs]]\nmatch = \"k8s\"\npath = \"etc/values.yaml\"\nstrategy = \"override\"\ndata = \"b: 2\"\n",
        )
        .unwrap();
        assert_eq!(patched(&model), [("k8s".into(), "etc/values.yaml".into())]);
    }
}
