//! Command-line definitions (clap). Nothing here does any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Converge fleets of Linux hosts to what a Clusterfile declares: plan, apply, drift.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The Clusterfile to read [default: Clusterfile] (`apply PLAN`: the one the plan records).
    #[arg(short = 'f', long = "file", global = true, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Print JSON instead of text (plan: one document; apply: one event per line).
    #[arg(long, global = true)]
    pub json: bool,

    /// No colours (also when `NO_COLOR` is set or output is not a terminal).
    #[arg(long = "no-color", global = true)]
    pub no_color: bool,

    /// The PostgreSQL state backend's URL, over the Clusterfile's `[state]` (and choosing that backend): `env:NAME`, `file:PATH`, or a URL without a password.
    #[arg(
        long = "state-url",
        global = true,
        value_name = "URL",
        env = "CAIRN_STATE_URL",
        hide_env_values = true
    )]
    pub state_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The Clusterfile `-f` names, or `Clusterfile` in this folder.
    pub fn clusterfile(&self) -> &std::path::Path {
        self.file
            .as_deref()
            .unwrap_or(std::path::Path::new("Clusterfile"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the Clusterfile; touch nothing.
    #[command(
        after_help = "Examples:\n  cairn validate\n  cairn validate -f plans/quickstart.toml"
    )]
    Validate(ValidateArgs),

    /// Refresh the hosts, then show every change an apply would make, with its reason.
    #[command(
        after_help = "Examples:\n  cairn plan\n  cairn plan --offline --json\n  cairn plan --diff                # what each changed file will look like\n  cairn plan --var app_version=1.4.2 --var-file prod.toml\n  cairn plan -o tonight.plan && cairn apply tonight.plan\n  cairn plan --detailed-exitcode   # exit 2 when there are changes"
    )]
    Plan(PlanArgs),

    /// Make the hosts match the Clusterfile.
    #[command(
        after_help = "Examples:\n  cairn apply\n  cairn apply --auto-approve\n  cairn apply tonight.plan            # a saved plan; refused if anything changed since\n  cairn apply --replace step.init     # rerun a step on all its hosts\n  cairn apply --limit node0           # only this host"
    )]
    Apply(ApplyArgs),

    /// Read-only check, for cron: do the hosts still match the Clusterfile?
    #[command(
        after_help = "Exit codes: 0 in sync, 2 drift, 4 some hosts could not be checked, 6 both, 1 error.\nTakes no lock: safe beside a running apply. See docs/drift.md for cron, systemd and alerts.\n\nExamples:\n  cairn drift\n  cairn drift --diff\n  cairn drift --json | jq '.hosts[] | select(.in_sync | not)'\n  cairn drift --limit worker\n  cairn drift --prometheus /var/lib/node_exporter/textfile/cairn.prom"
    )]
    Drift(DriftArgs),

    /// Print the task graph as Graphviz DOT.
    #[command(after_help = "Example:\n  cairn graph | dot -Tsvg > graph.svg")]
    Graph,

    /// Print the JSON schema of the Clusterfile.
    #[command(after_help = "Example:\n  cairn schema > clusterfile.schema.json")]
    Schema,

    /// Inspect the recorded state.
    #[command(subcommand)]
    State(StateCommand),

    /// Print a saved plan as `plan` printed it, or (without PLAN) the recorded state per host.
    #[command(
        after_help = "Examples:\n  cairn show tonight.plan          # the saved plan, as `cairn plan` printed it\n  cairn show tonight.plan --json   # as `cairn plan --json`\n  cairn show                       # what is recorded: hosts, tasks, captured values"
    )]
    Show(ShowArgs),

    /// Print values captured by steps (`capture = NAME`), as the last apply recorded them.
    #[command(
        after_help = "With NAME and one value on every host, prints just the value (for scripts); where hosts\nrecorded different values, one `HOST<TAB>VALUE` line per host. Values holding a secret are masked.\nExit 1 when nothing is recorded yet or NAME is unknown.\n\nExamples:\n  cairn output\n  cairn output join_command\n  JOIN=$(cairn output join_command)\n  cairn output --json"
    )]
    Output(OutputArgs),

    /// Add hosts to the Clusterfile (its formatting kept), then plan and apply.
    #[command(
        after_help = "Each ADDRESS becomes one [[hosts]] entry, written as given (a range stays one entry).\n\nExamples:\n  cairn add 10.0.0.7 --role worker\n  cairn add 10.0.0.8-10.0.0.9 --role worker --auto-approve\n  cairn add 10.0.0.5 --role master --name master1 --user ops --port 2222\n  cairn add 10.0.0.10 --role worker --no-apply   # only edit the Clusterfile"
    )]
    Add(AddArgs),

    /// Remove hosts from the Clusterfile (its formatting kept), then plan and apply.
    #[command(
        after_help = "HOST is a host's name or its address (`10.0.0.3`, `10.0.0.3:2222`, `ops@10.0.0.3:2222`). A host in a range entry is cut out of the range.\n\nExamples:\n  cairn delete worker3\n  cairn delete 10.0.0.7 10.0.0.8 --auto-approve\n  cairn delete 10.0.0.4 --no-apply   # only edit the Clusterfile"
    )]
    Delete(DeleteArgs),

    /// Undo everything cairn did on the hosts, in reverse dependency order, and forget them.
    #[command(
        after_help = "Undos run before the undos of what they came after; a bundle's files are removed after\nevery undo that runs in its folder. Shipped files changed by hand are kept and listed.\nThen cairn's folder on each host (receipts, lock files) is removed and the host leaves\nthe state. A host that cannot be reached is reported and kept.\n\nExamples:\n  cairn reset\n  cairn reset --limit worker --auto-approve"
    )]
    Reset(ResetArgs),

    /// Run a command on hosts, in parallel; output grouped per host. Records nothing.
    #[command(
        after_help = "The command runs as steps do: through sudo when the host's [ssh] says so, its output\nscrubbed of the Clusterfile's secrets. No `${}` interpolation: the text goes to the host's `sh` as is.\nExit 1 if any host failed (non-zero exit, timeout, unreachable).\n\nExamples:\n  cairn exec --on worker -- uptime\n  cairn exec --on master[0] -- kubectl get nodes\n  cairn exec --on master,worker --timeout 30s -- 'systemctl is-active kubelet || journalctl -u kubelet -n 20'\n  cairn exec --on node3 --json -- df -h / | jq -r 'select(.exit_code != 0) | .host'"
    )]
    Exec(ExecArgs),

    /// Copy a file or folder to hosts (--on), or from one (--from). Records nothing.
    #[command(
        after_help = "Placed as `cp -r` would: into DEST when DEST ends with `/` or is a folder, else as DEST;\n`SRC/.` copies what a folder holds. Each file is staged beside its place and renamed into it.\nRelative paths on a host start where its steps run (the user's home over SSH).\n\nExamples:\n  cairn cp --on worker ./kubelet.conf /etc/kubernetes/\n  cairn cp --on master,worker ./manifests /opt/app/manifests\n  cairn cp --from master[0] /etc/kubernetes/admin.conf ./admin.conf\n  cairn cp --from node3 /var/log/app/ ./logs/node3/"
    )]
    Cp(CpArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  cairn completions bash > /etc/bash_completion.d/cairn\n  cairn completions zsh > \"${fpath[1]}/_cairn\"\n  cairn completions fish > ~/.config/fish/completions/cairn.fish"
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },

    /// Print cairn's manual page (roff), or write one page per command into a folder.
    #[command(
        after_help = "Examples:\n  cairn man | man -l -\n  cairn man --dir /usr/local/share/man/man1   # cairn.1, cairn-plan.1, ..."
    )]
    Man {
        /// Write `cairn.1` and a page per command (`cairn-plan.1`, ...) into this existing folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },

    /// Write a cairn Clusterfile from another tool's cluster description.
    #[command(subcommand)]
    Import(ImportCommand),

    /// Force the cluster lock and host locks open, naming each holder.
    #[command(
        after_help = "Breaks the cluster lock on this machine and the lock of every host (or of the named ones): the processes a holder still runs on a host are killed, after confirmation.\n\nExamples:\n  cairn unlock                 # every host, and the cluster lock\n  cairn unlock node0 node3     # these hosts only\n  cairn unlock --auto-approve"
    )]
    Unlock(UnlockArgs),

    /// Pack a bundle folder reproducibly, or show what a bundle or image holds.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

/// `cairn bundle ...`: bundles outside any Clusterfile.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pack a folder into a .tar.zst bundle: the same files give the same bytes.
    #[command(
        after_help = "Entries sorted, mtimes 0, owners 0:0 without names, modes as in the folder, links kept.\n\nExamples:\n  cairn bundle pack bundles/app -o app.tar.zst\n  sha256sum app.tar.zst   # the same on every machine, for the same files"
    )]
    Pack {
        /// The bundle folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The archive to write.
        #[arg(short = 'o', long = "output", value_name = "FILE.tar.zst")]
        output: PathBuf,
    },
    /// Show a bundle source: kind, hooks, vars, cmd, configs, files, digest.
    #[command(
        after_help = "SOURCE is anything a bundle's `source` may be: a folder, a .tar.zst, an OCI archive\n(`sealos save`), a docker archive (`docker save`) or an OCI layout folder.\n\nExamples:\n  cairn bundle inspect kubernetes.tar\n  cairn bundle inspect bundles/app --json"
    )]
    Inspect {
        /// The folder, archive or image.
        #[arg(value_name = "SOURCE")]
        source: PathBuf,
    },
}

/// Values for the Clusterfile's `[vars]` from outside, lowest first:
/// `[vars]` < `--var-file` < `--var` < a host's own `vars`.
#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set a variable declared in `[vars]` (a string, or the declared type). Repeatable; wins over --var-file.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Set variables declared in `[vars]` from a TOML file of `name = value` lines. Repeatable; later files win.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved by `cairn plan -o FILE`; without it, the recorded state.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,

    /// A saved plan one line per task, even where three or more hosts share
    /// a change (shown once with their count by default).
    #[arg(long)]
    pub expand: bool,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// One captured value, by its `capture` name; without it, all of them.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,

    /// Undos running at once, overall (one at a time per host); also the most SSH connections open at once.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    /// Only these hosts: a role, a host name or address, or a glob of them ('web*', 'node?'); `!PATTERN` leaves those out. Repeatable, or comma-separated.
    #[arg(long, value_name = "ROLE|HOST", value_delimiter = ',')]
    pub limit: Vec<String>,

    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Hosts to run on: a role, `role[i]`, a host name or address, as a step's `on`, or a glob of them ('web*'). Repeatable, or comma-separated.
    #[arg(long, value_name = "SELECTOR", value_delimiter = ',', required = true)]
    pub on: Vec<String>,

    /// Hosts running the command at once.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    /// Stop the command on a host after this long (`30s`, `5m`); that host fails.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// The command, run by `sh` on each host (words are joined with spaces, as ssh does).
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("hosts").required(true).args(["on", "from"])))]
pub struct CpArgs {
    /// Copy SRC (here) to DEST on these hosts: a role, `role[i]`, a host name or address, or a glob of them ('web*'). Repeatable, or comma-separated.
    #[arg(long, value_name = "SELECTOR", value_delimiter = ',')]
    pub on: Vec<String>,

    /// Fetch SRC from this one host to DEST here.
    #[arg(long, value_name = "HOST", conflicts_with = "on")]
    pub from: Option<String>,

    /// Hosts copied to at once.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    /// The file or folder to copy (`FOLDER/.` for what it holds).
    #[arg(value_name = "SRC")]
    pub src: String,

    /// Where it goes.
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(Debug, Args, Clone)]
pub struct LockArgs {
    /// Wait this long for a lock another live apply holds, retrying, before
    /// refusing (a dead apply's commands still running are always waited
    /// for, bounded by their own timeouts).
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Only these hosts (names or addresses); without any, every host and the cluster lock.
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Do not ask for confirmation.
    #[arg(long = "auto-approve", visible_alias = "force")]
    pub auto_approve: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
    /// Only these hosts: a role, a host name or address, or a glob of them ('web*', 'node?'); `!PATTERN` leaves those out. Repeatable, or comma-separated.
    #[arg(long, value_name = "ROLE|HOST", value_delimiter = ',')]
    pub limit: Vec<String>,

    /// Run these tasks even if unchanged: `step.init@master0`, or `step.init` for all its hosts. Repeatable.
    #[arg(long, value_name = "TASK")]
    pub replace: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Save the plan here (the folder must exist); `cairn apply FILE` applies exactly it, from any folder: it records its Clusterfile, --var values and targets.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Exit 0 with no changes, 2 with changes, 1 on error.
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,

    /// Do not contact hosts: compare with the recorded state only.
    #[arg(long, conflicts_with = "diff")]
    pub offline: bool,

    /// Hosts probed at once: at most this many SSH connections are open; the others wait their turn.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    #[command(flatten)]
    pub display: PlanDisplay,

    #[command(flatten)]
    pub selection: Selection,

    #[command(flatten)]
    pub vars: VarArgs,
}

/// How `plan` and `apply` show the plan.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct PlanDisplay {
    /// Also show a unified diff of every file that would change, against
    /// what the host has now (text files up to 256 KiB, secrets masked).
    #[arg(long)]
    pub diff: bool,

    /// One line per task, even where three or more hosts share a change
    /// (shown once with their count by default).
    #[arg(long)]
    pub expand: bool,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Only these hosts: a role, a host name or address, or a glob of them ('web*', 'node?'); `!PATTERN` leaves those out. Repeatable, or comma-separated.
    #[arg(long, value_name = "ROLE|HOST", value_delimiter = ',')]
    pub limit: Vec<String>,

    /// Show how each modified file differs from what cairn shipped (a
    /// unified diff for text files up to 256 KiB, secrets masked).
    #[arg(long)]
    pub diff: bool,

    /// Also write the result as Prometheus metrics to FILE, atomically, for
    /// `node_exporter`'s textfile collector (e.g. `/var/lib/node_exporter/textfile/cairn.prom`).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,

    /// Hosts checked at once: at most this many SSH connections are open; the others wait their turn.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `cairn plan -o FILE`.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,

    /// Do not ask for confirmation.
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,

    /// Tasks running at once, overall; also the most SSH connections open at once (hosts beyond it are probed and worked on in turn).
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    /// After the first failed task, start nothing new: running tasks finish
    /// and are recorded, the rest is skipped. By default only what waits for
    /// the failed task is skipped.
    #[arg(long = "fail-fast")]
    pub fail_fast: bool,

    #[command(flatten)]
    pub display: PlanDisplay,

    #[command(flatten)]
    pub selection: Selection,

    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List recorded tasks.
    #[command(after_help = "Example:\n  cairn state list")]
    List,
    /// Show one task's record: key, inputs, what it left on the host (`--json`: the record as JSON).
    #[command(
        after_help = "Examples:\n  cairn state show step.init@master0\n  cairn state show step.init@master0 --json"
    )]
    Show {
        /// The task id, as `cairn state list` prints it.
        task: String,
    },
    /// Forget hosts or tasks without touching any host (like `terraform state rm`).
    #[command(
        after_help = "A host that left the Clusterfile and can no longer be reached is forgotten this way; \nwhat cairn did on it stays there.\n\nExamples:\n  cairn state rm 10.0.0.7            # a host, by name or recorded address\n  cairn state rm step.init@master0   # one task: the next apply runs it again"
    )]
    Rm {
        /// Host names, recorded addresses, or task ids.
        #[arg(required = true, value_name = "HOST|TASK")]
        targets: Vec<String>,

        #[command(flatten)]
        lock: LockArgs,
    },
    /// Copy the local state to the backend `[state]` names, then mark the local one as moved.
    #[command(
        after_help = "The local journal is read and checked, copied in one transaction (refused when the\nbackend already holds a state for the cluster), read back and compared; only then is\nthe local state marked as migrated, so it cannot be used by mistake.\n\nExample:\n  CAIRN_STATE_URL=postgres://cairn@db/ops cairn state migrate --to postgres"
    )]
    Migrate {
        /// The backend to move to.
        #[arg(long, value_enum)]
        to: StateBackendArg,

        #[command(flatten)]
        lock: LockArgs,
    },
    /// Write the backend's current state to the local folder `.cairn/<cluster>/` (a backup, or leaving the backend).
    #[command(after_help = "Example:\n  cairn state pull")]
    Pull {
        /// Overwrite a local state that was not migrated away.
        #[arg(long)]
        force: bool,
    },
}

/// A state backend a state can be moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateBackendArg {
    Postgres,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new hosts: `addr`, `user@addr:port`, or a range `10.0.0.5-10.0.0.9`.
    #[arg(value_name = "ADDRESS", required = true)]
    pub addresses: Vec<String>,

    /// Their roles. Repeatable, or comma-separated.
    #[arg(
        long = "role",
        value_name = "ROLE",
        required = true,
        value_delimiter = ','
    )]
    pub roles: Vec<String>,

    /// The host's name (one address only). Default: named as hosts without a `name` are.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Login user, for addresses that do not say `user@`.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// SSH port, for addresses that do not say `:port`.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    #[command(flatten)]
    pub then: EditThenApply,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The hosts to remove: a name, or an address (`addr`, `addr:port`, `user@addr:port`).
    #[arg(value_name = "HOST", required = true)]
    pub hosts: Vec<String>,

    #[command(flatten)]
    pub then: EditThenApply,
}

/// What `add` and `delete` do once the Clusterfile is edited.
#[derive(Debug, Args)]
pub struct EditThenApply {
    /// Only edit the Clusterfile: no plan, no apply.
    #[arg(long = "no-apply", conflicts_with_all = ["auto_approve", "fail_fast"])]
    pub no_apply: bool,

    /// Apply without asking for confirmation.
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,

    /// Tasks running at once, overall; also the most SSH connections open at once (hosts beyond it are probed and worked on in turn).
    #[arg(long, default_value_t = DEFAULT_PARALLELISM, value_name = "N", value_parser = at_least_one)]
    pub parallelism: usize,

    /// After the first failed task, start nothing new (see `cairn apply --help`).
    #[arg(long = "fail-fast")]
    pub fail_fast: bool,

    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub vars: VarArgs,
}

/// `--parallelism`'s default: tasks, and SSH connections, at once.
///
/// Each connection is an OpenSSH process of about 8 MB resident (1.4 MB
/// of it its own, the rest shared libraries counted in every process):
/// 48 of them are 400 MB, which keeps cairn and its ssh processes under
/// 600 MB at 200 hosts (docs/performance.md), and on a small controller
/// 48 handshakes at once already take every core.
pub const DEFAULT_PARALLELISM: usize = 48;

/// `--parallelism`: a count of things at once, so at least one (0 would
/// start nothing and wait forever).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (it is how many run at once)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: give a whole number, at least 1")),
    }
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A sealos Clusterfile (Cluster, Config and kubeadm documents) as a cairn Clusterfile.
    #[command(
        after_help = "Passwords and key passphrases are never copied: each becomes a secret read from an\nenvironment variable (SEALOS_SSH_PASSWORD, ...), listed at the top of the result. Each image\nbecomes a bundle read from the archive `sealos save` writes. Every field not imported is\nwarned about on stderr.\n\nExamples:\n  cairn import sealos Clusterfile.yaml                  # the result on stdout\n  cairn import sealos Clusterfile.yaml -o Clusterfile\n  cairn import sealos ~/.sealos/default/Clusterfile -o Clusterfile --force"
    )]
    Sealos(ImportSealosArgs),
}

#[derive(Debug, Args)]
pub struct ImportSealosArgs {
    /// The sealos Clusterfile (multi-document YAML).
    #[arg(value_name = "FILE")]
    pub sealos_file: PathBuf,

    /// Write the cairn Clusterfile here instead of to stdout.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace the file `-o` names if it exists.
    #[arg(long)]
    pub force: bool,
}
