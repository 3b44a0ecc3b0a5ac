//! Manifest templates: `{{ name }}` references to application variables inside component
//! `variables` and `allowed_outbound_hosts`. At load time we only check that they are well
//! formed and name declared variables; substitution happens when variables resolve.

use std::collections::BTreeMap;

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits `"https://{{ host }}:8080"` into text and variable parts.
pub fn parse(s: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("\"{{\" without a closing \"}}\"".to_string());
        };
        let name = after[..close].trim();
        if name.is_empty() {
            return Err("empty \"{{ }}\"".to_string());
        }
        super::names::check_snake(name).map_err(|e| format!("bad variable reference: {e}"))?;
        parts.push(Part::Var(name));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

pub fn has_template(s: &str) -> bool {
    s.contains("{{")
}

/// Checks that every `{{ name }}` in `s` names a declared application variable.
pub fn check_refs<V>(s: &str, declared: &BTreeMap<String, V>) -> Result<(), String> {
    for part in parse(s)? {
        if let Part::Var(name) = part
            && !declared.contains_key(name)
        {
            return Err(format!(
                "references undeclared variable {name:?} (declare it under [variables])"
            ));
        }
    }
    Ok(())
}

/// Replaces every `{{ name }}` using `lookup`; for callers that have resolved variables.
pub fn render(s: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    for part in parse(s)? {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Var(name) => match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("variable {name:?} has no value")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("plain").unwrap(), vec![Part::Text("plain")]);
        assert_eq!(parse("{{api_key}}").unwrap(), vec![Part::Var("api_key")]);
        assert_eq!(
            parse("https://{{ host }}:{{port}}").unwrap(),
            vec![
                Part::Text("https://"),
                Part::Var("host"),
                Part::Text(":"),
                Part::Var("port")
            ]
        );
        assert!(parse("{{ host").is_err());
        assert!(parse("{{ }}").is_err());
        assert!(parse("{{ Host }}").is_err());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn refs_and_render() {
        let declared: BTreeMap<String, ()> = [("host".to_string(), ())].into();
        assert!(check_refs("https://{{ host }}", &declared).is_ok());
        let e = check_refs("{{ nope }}", &declared).unwrap_err();
        assert!(e.contains("\"nope\""), "{e}");
        let r = render("https://{{ host }}/", |n| {
            (n == "host").then(|| "a.com".to_string())
        });
        assert_eq!(r.unwrap(), "https://a.com/");
        assert!(render("{{ x }}", |_| None).is_err());
    }
}
