#!/usr/bin/env python3
"""Parses a metrics scrape with the Prometheus project's Python client
(Debian's python3-prometheus-client): the text format 0.0.4 or, with
--openmetrics, OpenMetrics (whose parser is strict: it rejects what
Prometheus would). Prints one JSON line per sample: [name, labels, value].
A scrape either parser rejects makes this exit non-zero with its error."""
import json
import sys

if "--openmetrics" in sys.argv:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
