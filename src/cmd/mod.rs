//! The commands: each file wires its arguments through the pipeline to the
//! reporter, and this one only dispatches.
//!
//! A command takes the `pipeline` stages as far as it needs and hands what
//! it gets to `report::Output`; none holds logic of its own beyond deciding
//! what to ask, what to show and which exit code it means. A new command is
//! a new file here and a new variant in `cli`.

mod add;
mod apply;
mod bundle;
mod completions;
mod cp;
mod delete;
mod drift;
mod edited;
mod exec;
mod graph;
mod import;
mod man;
mod output;
mod plan;
mod recorded;
mod reset;
mod schema;
mod show;
mod state;
mod unlock;
mod validate;

use crate::cli::{Cli, Command};
use crate::error::{CairnError, Success};
use crate::report::{Output, Style};

/// Runs the command `cli` names.
pub fn run(cli: &Cli) -> Result<Success, CairnError> {
    let file = cli.clusterfile();
    let no_vars = crate::cli::VarArgs::default();
    let vars = match &cli.command {
        Command::Validate(args) => &args.vars,
        Command::Plan(args) => &args.vars,
        Command::Apply(args) => &args.vars,
        Command::Drift(args) => &args.vars,
        Command::Reset(args) => &args.vars,
        Command::Add(args) => &args.then.vars,
        Command::Delete(args) => &args.then.vars,
        _ => &no_vars,
    };
    crate::report::remember_invocation(cli.file.as_deref(), &vars.vars, &vars.var_files);
    let out = Output::new(Style::detect(cli.no_color), cli.json);
    if let Some(url) = &cli.state_url {
        let from_env = std::env::var("CAIRN_STATE_URL").ok().as_deref() == Some(url.as_str());
        let url = crate::model::state_settings::url_from_argument(url, from_env)
            .map_err(|(message, help)| CairnError::usage(message, help))?;
        crate::model::state_settings::set_url_override(url);
    }
    match &cli.command {
        Command::Schema => Ok(schema::run(out)),
        Command::Validate(args) => validate::run(file, args, out),
        Command::Graph => graph::run(file, out),
        Command::Plan(args) => plan::run(file, args, out),
        Command::Drift(args) => drift::run(file, args, out),
        Command::Apply(args) => apply::run(cli.file.as_deref(), args, out),
        Command::State(sub) => state::run(file, sub, out),
        Command::Show(args) => show::run(file, args, out),
        Command::Output(args) => output::run(file, args, out),
        Command::Reset(args) => reset::run(file, args, out),
        Command::Add(args) => add::run(file, args, out),
        Command::Delete(args) => delete::run(file, args, out),
        Command::Exec(args) => exec::run(file, args, out),
        Command::Cp(args) => cp::run(file, args, out),
        Command::Unlock(args) => unlock::run(file, args, out),
        Command::Import(sub) => import::run(sub, out),
        Command::Completions { .. } | Command::Man { .. } if cli.json => Err(CairnError::usage(
            "--json does not apply here: completion scripts and manual pages have one form",
            "leave out --json",
        )),
        Command::Completions { shell } => Ok(completions::run(*shell, out)),
        Command::Man { dir } => man::run(dir.as_deref(), out),
        Command::Bundle(sub) => bundle::run(sub, out),
    }
}
