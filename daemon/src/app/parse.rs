//! TOML text -> raw manifest. The manifest version is checked on the untyped table first,
//! so a Spin v1 manifest (or anything else) gets an error about its version rather than
//! a confusing list of unknown fields.

use super::diag::Ctx;
use super::manifest::Manifest;

pub fn parse(ctx: &Ctx, text: &str) -> anyhow::Result<Manifest> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ctx.toml_err(text, &e))?;
    check_version(ctx, &table)?;
    toml::from_str(text).map_err(|e| ctx.toml_err(text, &e))
}

fn check_version(ctx: &Ctx, table: &toml::Table) -> anyhow::Result<()> {
    let place = "spin_manifest_version";
    let v1 = || {
        ctx.err(
            place,
            "this is a Spin manifest v1, which is not supported; only v2 \
             (`spin_manifest_version = 2`) is",
        )
    };
    match table.get("spin_manifest_version") {
        Some(toml::Value::Integer(2)) => Ok(()),
        Some(toml::Value::String(s)) if s == "1" => Err(v1()),
        Some(toml::Value::Integer(1)) => Err(v1()),
        Some(other) => Err(ctx.err(
            place,
            format_args!("unsupported version {other}; only version 2 (`spin_manifest_version = 2`) is supported"),
        )),
        None if table.contains_key("spin_version") => Err(v1()),
        None => Err(ctx.err_file(
            "missing `spin_manifest_version`; only Spin manifest v2 is supported (`spin_manifest_version = 2`)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(&Ctx::new("spin.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn versions() {
        let e = err("spin_manifest_version = \"1\"\nname = \"x\"\n");
        assert!(
            e.starts_with("spin.toml: spin_manifest_version: this is a Spin manifest v1"),
            "{e}"
        );
        let e = err("spin_version = \"1\"\n");
        assert!(e.contains("manifest v1"), "{e}");
        let e = err("spin_manifest_version = 3\n");
        assert!(e.contains("unsupported version 3; only version 2"), "{e}");
        let e = err("spin_manifest_version = \"2\"\n");
        assert!(e.contains("unsupported version \"2\""), "{e}");
        let e = err("[application]\nname = \"x\"\n");
        assert!(
            e.starts_with("spin.toml: missing `spin_manifest_version`"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("spin_manifest_version = 2\n[application\nname = \"x\"\n");
        assert!(e.starts_with("spin.toml: line 2, column "), "{e}");
    }

    #[test]
    fn unknown_field_has_line_and_column() {
        let text =
            "spin_manifest_version = 2\n\n[application]\nname = \"x\"\n\n\ncolour = \"red\"\n";
        let e = err(text);
        assert!(
            e.starts_with("spin.toml: line 7, column 1: unknown field `colour`, expected one of"),
            "{e}"
        );
    }
}
