//! How manifest errors are worded: `<manifest path as given>: <place>: <problem>`, with
//! TOML syntax and type errors placed by line and column. Keeping this in one spot keeps
//! every message of the loader in the same shape.

use std::fmt::Display;
use std::ops::Range;

/// The manifest being loaded, as the user should see it named in errors.
#[derive(Debug, Clone)]
pub struct Ctx {
    shown: String,
}

impl Ctx {
    pub fn new(shown: impl Into<String>) -> Ctx {
        Ctx {
            shown: shown.into(),
        }
    }

    pub fn err(&self, place: impl Display, problem: impl Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {place}: {problem}", self.shown)
    }

    /// For problems that concern the file as a whole.
    pub fn err_file(&self, problem: impl Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {problem}", self.shown)
    }

    /// A TOML error from `toml`, placed by line and column when it carries a span.
    pub fn toml_err(&self, text: &str, e: &toml::de::Error) -> anyhow::Error {
        // `e.message()` is the bare message (`Display` would add a source snippet); it can
        // still span lines ("invalid string\nexpected ..."), and errors are one line.
        let message = e.message().trim().replace('\n', "; ");
        match e.span().and_then(|span| place_of(text, span)) {
            Some(place) => self.err(place, message),
            None => self.err_file(message),
        }
    }
}

/// `line L, column C` (both 1-based, column counted in characters) for the start of a span.
/// A span covering the whole document carries no information (toml reports some
/// top-level errors such as a missing `[application]` that way), so it gives `None`.
fn place_of(text: &str, span: Range<usize>) -> Option<String> {
    if span.start == 0 && span.end >= text.trim_end().len() && !text.trim().is_empty() {
        return None;
    }
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Some(format!("line {line}, column {column}"))
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbb = 2\n  cé = 3\n";
        assert_eq!(place_of(text, 0..1).as_deref(), Some("line 1, column 1"));
        assert_eq!(place_of(text, 6..8).as_deref(), Some("line 2, column 1"));
        let c = text.find('c').unwrap();
        assert_eq!(
            place_of(text, c..c + 1).as_deref(),
            Some("line 3, column 3")
        );
        let eq = text.rfind('=').unwrap();
        assert_eq!(
            place_of(text, eq..eq + 1).as_deref(),
            Some("line 3, column 6")
        );
        assert_eq!(place_of(text, 0..text.len()), None);
    }

    #[test]
    fn error_format() {
        let ctx = Ctx::new("spin.toml");
        let e = ctx.err("component \"hello\"", "source \"x.wasm\": no such file");
        assert_eq!(
            e.to_string(),
            "spin.toml: component \"hello\": source \"x.wasm\": no such file"
        );
        let e: toml::de::Error = toml::from_str::<toml::Table>("a = 1\nb = = 2\n").unwrap_err();
        let msg = ctx.toml_err("a = 1\nb = = 2\n", &e).to_string();
        assert!(msg.starts_with("spin.toml: line 2, column "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
