//! Naming rules of the manifest: kebab-case component ids and lower_snake_case variable
//! names. Spin enforces both; we do too, so an app that loads here also loads in Spin.

/// `hello`, `api-v2`: lowercase ASCII words of letters and digits joined by single `-`,
/// starting with a letter.
pub fn check_kebab(id: &str) -> Result<(), String> {
    check_words(id, '-', "kebab-case (like \"my-component\")")
}

/// `api_key`, `db2_url`: lowercase ASCII words joined by single `_`, starting with a letter.
pub fn check_snake(name: &str) -> Result<(), String> {
    check_words(name, '_', "lower_snake_case (like \"api_key\")")
}

fn check_words(s: &str, sep: char, style: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not {style}: {why}"));
    let Some(first) = s.chars().next() else {
        return bad("it is empty");
    };
    if !first.is_ascii_lowercase() {
        return bad("it must start with a lowercase letter");
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == sep))
    {
        return bad(&format!("{c:?} is not allowed"));
    }
    // Empty words make ids that differ only by separators, which people misread.
    if s.ends_with(sep) || s.contains(&format!("{sep}{sep}")) {
        return bad(&format!(
            "each {sep:?} must be followed by a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab() {
        for ok in ["a", "hello", "api-v2", "a1-b2-c3"] {
            assert!(check_kebab(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Hello", "1abc", "-a", "a-", "a--b", "a_b", "a b", "é"] {
            assert!(check_kebab(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_kebab("My").unwrap_err(),
            "\"My\" is not kebab-case (like \"my-component\"): it must start with a lowercase letter"
        );
    }

    #[test]
    fn snake() {
        for ok in ["a", "api_key", "db2_url"] {
            assert!(check_snake(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ApiKey", "api-key", "_a", "a_", "a__b", "9a"] {
            assert!(check_snake(bad).is_err(), "{bad}");
        }
    }
}
