//! The two text formats a scraper may ask for: OpenMetrics (what Prometheus
//! asks for first) and the older Prometheus text format (version 0.0.4: what
//! a client that sends no `Accept` header, curl, or many agents read). The
//! encoders are prometheus-client's; this picks one.

use prometheus_client::registry::Registry;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `registry` in the format `accept` prefers; returns the content type too.
pub fn render(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut text = String::with_capacity(16 * 1024);
    if wants_openmetrics(accept) {
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, registry);
        (OPENMETRICS, text)
    } else {
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
        (PROMETHEUS_TEXT, text)
    }
}

/// True when `accept` lists `application/openmetrics-text` with a quality
/// above zero (Prometheus lists it before `text/plain`).
fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }
}
