//! `${name}` interpolation in Clusterfile strings (Terraform style; `$${`
//! escapes a literal `${`).
//!
//! A string is parsed once, at validation, into literal and variable pieces,
//! so undefined names are found before anything runs, and so a task's key
//! can name exactly the variables it reads. Rendering happens per host, with
//! secrets in clear: rendered text only travels on stdin to hosts, and what
//! is shown of it (output, logs) goes through the model's `Scrubber`.

use std::ops::Range;

/// A parsed Clusterfile string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interp {
    /// The text as written, kept for keys and messages.
    pub source: String,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    /// `${name}`; `offset` is the byte offset of `$` inside the string.
    Var {
        name: String,
        offset: usize,
    },
}

/// What a variable resolves to while rendering.
pub enum Resolved<'a> {
    Text(std::borrow::Cow<'a, str>),
    /// A secret: its value, shown masked.
    Secret(&'a str),
    /// A captured value not known yet (plan time).
    Unknown,
}

/// Why a string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpError {
    pub offset: usize,
    pub message: String,
}

impl Interp {
    pub fn parse(text: &str) -> Result<Interp, InterpError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(escaped) = after.strip_prefix("$${") {
                literal.push_str("${");
                offset += pos + 3;
                rest = escaped;
            } else if let Some(inner) = after.strip_prefix("${") {
                let Some(end) = inner.find('}') else {
                    return Err(InterpError {
                        offset: offset + pos,
                        message:
                            "unterminated `${`: add the closing `}` (or write `$${` for a literal)"
                                .into(),
                    });
                };
                let name = inner[..end].trim();
                if !is_var_name(name) {
                    return Err(InterpError {
                        offset: offset + pos,
                        message: format!("`${{{}}}` is not a variable name", &inner[..end]),
                    });
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var {
                    name: name.to_string(),
                    offset: offset + pos,
                });
                offset += pos + 2 + end + 1;
                rest = &inner[end + 1..];
            } else {
                literal.push('$');
                offset += pos + 1;
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Interp {
            source: text.to_string(),
            pieces,
        })
    }

    /// A string with no variables.
    pub fn literal(text: &str) -> Interp {
        Interp {
            source: text.to_string(),
            pieces: vec![Piece::Literal(text.to_string())],
        }
    }

    /// The variable names this string reads, in order, without repeats.
    pub fn vars(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Var { name, .. } = piece
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Renders with secrets in clear: only for text sent on stdin or written to hosts.
    pub fn render<'a>(
        &self,
        mut lookup: impl FnMut(&str) -> Resolved<'a>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Var { name, .. } => match lookup(name) {
                    Resolved::Text(text) => out.push_str(&text),
                    Resolved::Secret(value) => out.push_str(value),
                    Resolved::Unknown => return Err(name.clone()),
                },
            }
        }
        Ok(out)
    }
}

pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Maps an offset inside a string value to a span in the Clusterfile: exact
/// when the string appears verbatim in the source, else the whole value.
pub fn sub_span(
    source_text: &str,
    value_span: &Range<usize>,
    value: &str,
    offset: usize,
    len: usize,
) -> Range<usize> {
    let slice = source_text.get(value_span.clone()).unwrap_or("");
    let needle = value.get(offset..offset + len).unwrap_or("");
    if !needle.is_empty()
        && let Some(pos) = slice.find(needle)
    {
        let start = value_span.start + pos;
        return start..start + needle.len();
    }
    value_span.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> String {
        Interp::parse(text)
            .unwrap()
            .render(|name| match name {
                "a" => Resolved::Text("1".into()),
                "host.name" => Resolved::Text("m0".into()),
                "token" => Resolved::Secret("s3cret"),
                _ => Resolved::Unknown,
            })
            .unwrap()
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(render("x ${a} y"), "x 1 y");
        assert_eq!(render("${host.name}-${a}"), "m0-1");
        assert_eq!(render("$${a} costs $5"), "${a} costs $5");
        assert_eq!(render("${ a }"), "1");
    }

    #[test]
    fn lists_vars_once() {
        let i = Interp::parse("${a} ${b} ${a}").unwrap();
        assert_eq!(i.vars(), vec!["a", "b"]);
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert!(
            Interp::parse("echo ${a")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            Interp::parse("echo ${1x}")
                .unwrap_err()
                .message
                .contains("not a variable")
        );
    }

    #[test]
    fn unknown_fails_real_render() {
        let i = Interp::parse("x ${cap}").unwrap();
        assert_eq!(i.render(|_| Resolved::Unknown), Err("cap".to_string()));
    }

    #[test]
    fn sub_span_finds_the_reference() {
        let src = r#"run = "echo ${nope}""#;
        let span = 6..20;
        let value = "echo ${nope}";
        assert_eq!(&src[sub_span(src, &span, value, 5, 7)], "${nope}");
    }
}
