//! `oci://HOST[:PORT]/REPOSITORY[:TAG]`: where a fleet's bundles are
//! published (`gatewayctl push bundle --to`) and followed (`[fleet] source`).
//! A tag, not a digest: gateways follow a tag as it moves.

/// A parsed `oci://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    /// `HOST[:PORT]`.
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl OciReference {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("oci://")
            .ok_or("an OCI address starts with oci:// (oci://HOST[:PORT]/REPOSITORY:TAG)")?;
        if rest.contains('@') {
            return Err(
                "a digest (@sha256:...) pins one artifact; name a tag, which gateways follow"
                    .into(),
            );
        }
        let (registry, path) = rest
            .split_once('/')
            .ok_or("no repository: oci://HOST[:PORT]/REPOSITORY:TAG")?;
        if registry.is_empty() {
            return Err("no registry host".into());
        }
        // The tag follows the last ':' of the path (the registry's port is
        // before the first '/').
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => (repository, tag),
            None => (path, "latest"),
        };
        let repository_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !repository_ok {
            return Err(format!(
                "repository {repository:?}: lower-case letters, digits, '.', '_', '-' and '/' between parts"
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(format!(
                "tag {tag:?}: 1 to 128 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
            ));
        }
        Ok(OciReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The same repository under another tag.
    pub fn with_tag(&self, tag: &str) -> Self {
        OciReference {
            tag: tag.to_string(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for OciReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "oci://{}/{}:{}",
            self.registry, self.repository, self.tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_ports_paths_and_default_tags() {
        let r = OciReference::parse("oci://127.0.0.1:5000/fleet/hello:canary").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "fleet/hello", "canary")
        );
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/fleet/hello:canary");
        let r = OciReference::parse("oci://registry.lan/hello").unwrap();
        assert_eq!(r.tag, "latest");
        assert_eq!(r.with_tag("stable").tag, "stable");
        for (bad, why) in [
            ("https://r/x:1", "starts with oci://"),
            ("oci://r", "no repository"),
            ("oci://r/Hello:1", "repository \"Hello\""),
            ("oci://r/x:-1", "tag \"-1\""),
            ("oci://r/x@sha256:00", "name a tag"),
            ("oci:///x:1", "no registry host"),
        ] {
            let error = OciReference::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
