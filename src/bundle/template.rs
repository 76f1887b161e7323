//! Jinja2 templates (minijinja), rendered per host.
//!
//! Templates see the same variables as `${}` strings: `[vars]`, the host's
//! vars, `cluster` and `host.{address,name,roles,index}`. Undefined names are
//! errors, not empty strings: a typo in a template must not ship a broken
//! config to a fleet. The trailing newline is kept, as config files expect.

use std::fmt::Write as _;

use minijinja::{Environment, UndefinedBehavior};

/// A set of named templates ready to render.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Templates { env }
    }

    /// Adds a template; a syntax error is reported here, with its line.
    pub fn add(&mut self, name: &str, source: String) -> Result<(), String> {
        self.env
            .add_template_owned(name.to_string(), source)
            .map_err(|e| describe(&e))
    }

    pub fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| describe(&e))?;
        template.render(context).map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                // minijinja does not say which name; find the top-level ones the context lacks.
                let missing: Vec<String> = template
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| context.get_attr(v).map_or(true, |x| x.is_undefined()))
                    .collect();
                if !missing.is_empty() {
                    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                    let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
                    let known: Vec<String> = context
                        .try_iter()
                        .map(|keys| keys.filter_map(|k| k.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    let suggestion = crate::words::closest(&missing[0], known.iter())
                        .map(|close| format!("did you mean `{close}`? "))
                        .unwrap_or_default();
                    return format!(
                        "undefined variable {}{line}; {suggestion}define it in [vars] or in the host's vars",
                        names.join(", ")
                    );
                }
            }
            describe(&e)
        })
    }
}

fn describe(error: &minijinja::Error) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line() {
        let _ = write!(text, " (line {line})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_loops_filters_and_trailing_newline() {
        let mut t = Templates::new();
        t.add(
            "a",
            "name = {{ name | upper }}\n{% for r in roles %}{{ r }};{% endfor %}\n".into(),
        )
        .unwrap();
        let ctx = minijinja::context! { name => "x", roles => vec!["m", "n"] };
        assert_eq!(t.render("a", &ctx).unwrap(), "name = X\nm;n;\n");
    }

    #[test]
    fn undefined_is_an_error_with_line() {
        let mut t = Templates::new();
        t.add("a", "ok\n{{ nope }}\n".into()).unwrap();
        let err = t.render("a", &minijinja::context! {}).unwrap_err();
        assert!(err.contains("undefined") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported_on_add() {
        let mut t = Templates::new();
        assert!(t.add("a", "{% if %}".into()).is_err());
    }
}
