//! Scraping a gateway's `/metrics` and reading it with the Prometheus
//! project's own parser (`promparse.py`, python3-prometheus-client), so a
//! test checks what a real scraper sees, not our reading of our output.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// One sample: metric name (with `_total`, `_bucket`, ...), labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// A parsed scrape.
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Scrape {
    /// GETs `url`; `openmetrics` asks for OpenMetrics as Prometheus does.
    /// Panics (naming the parser's complaint) if the text does not parse.
    pub async fn get(url: &str, openmetrics: bool) -> Scrape {
        let mut request = super::client().get(url);
        if openmetrics {
            request = request.header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            );
        }
        let response = request.send().await.expect("scrape failed");
        assert_eq!(response.status(), 200, "scrape of {url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let expected = if openmetrics {
            "application/openmetrics-text"
        } else {
            "text/plain; version=0.0.4"
        };
        assert!(content_type.starts_with(expected), "{content_type}");
        let text = response.text().await.unwrap();
        Scrape {
            samples: parse(&text, openmetrics),
            text,
        }
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.2).sum()
    }

    /// How many samples named `name` have `labels`.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.matching(name, labels).count()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
        })
    }
}

fn parse(text: &str, openmetrics: bool) -> Vec<Sample> {
    let script = super::repo_root().join("tests/harness/promparse.py");
    // Debian's interpreter, where python3-prometheus-client installs (a
    // python3 earlier on PATH, pyenv's say, does not see Debian's packages).
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .unwrap();
    let mut command = Command::new(python);
    command.arg(script);
    if openmetrics {
        command.arg("--openmetrics");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with python3-prometheus-client) is needed to parse metrics");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser rejects the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
