#!/usr/bin/python3
"""Draws the Grafana dashboard's panels as one PNG from a real Prometheus.

Every panel runs the dashboard's own PromQL (with `$instance` as `.*` and
`$__rate_interval` as RATE_INTERVAL) through Prometheus's query_range API, so
the picture shows what the dashboard shows, without a Grafana server. Used by
render.sh, which runs a gateway, the load and Prometheus first.

Usage: render.py PROMETHEUS_URL DASHBOARD.json START END EVENTS OUT.png
(START/END: Unix seconds; EVENTS: lines "UNIX_SECONDS label").
"""

import json
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATE_INTERVAL = "10s"
STEP = 2
BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
GRID = "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]


def query_range(prometheus, expr, start, end):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": STEP})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as reply:
        answer = json.load(reply)
    if answer.get("status") != "success":
        sys.exit(f"render: Prometheus refused {expr!r}: {answer}")
    return answer["data"]["result"]


def legend(template, labels):
    if template in ("", "__auto", None):
        return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def expand(expr):
    return expr.replace("$instance", ".*").replace("$__rate_interval", RATE_INTERVAL)


def human(value, unit):
    if unit == "bytes":
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= scale:
                return f"{value / scale:.1f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        minutes, seconds = divmod(int(value), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{value:.0f} s"
    if unit == "reqps":
        return f"{value:.1f} req/s"
    return f"{value:g}"


def stat_panel(ax, panel, series, unit):
    ax.set_xticks([])
    ax.set_yticks([])
    if not series:
        text = "no data"
    elif panel["targets"][0].get("legendFormat", "").startswith("{{"):
        # An info metric: the value is 1, the labels are the news; the
        # newest series is the one that holds now.
        target, result = max(series, key=lambda s: float(s[1]["values"][-1][0]))
        text = legend(target.get("legendFormat"), result["metric"])
    else:
        text = human(float(series[0][1]["values"][-1][1]), unit)
    ax.text(0.5, 0.42, text, ha="center", va="center", color="#73bf69", fontsize=15, weight="bold", transform=ax.transAxes)


def timeseries_panel(ax, series, unit, start, end, events):
    colour = 0
    # Series that stayed 0 would only crowd the legend (Grafana draws them
    # as a flat line); say how many were left out.
    flat = [s for s in series if all(float(v) == 0 for _, v in s[1]["values"])]
    series = [s for s in series if s not in flat]
    if flat:
        ax.text(0.99, 0.97, f"{len(flat)} series at 0 not drawn", ha="right", va="top", color="#8e8e8e", fontsize=6.5, transform=ax.transAxes)
    for target, result in series:
        xs = [(float(t) - start) / 60 for t, _ in result["values"]]
        ys = [float(v) for _, v in result["values"]]
        ax.plot(xs, ys, color=COLOURS[colour % len(COLOURS)], linewidth=1.4, label=legend(target.get("legendFormat"), result["metric"]))
        colour += 1
    for at, _ in events:
        ax.axvline((at - start) / 60, color="#5a5f66", linewidth=0.8, linestyle=":")
    ax.grid(color=GRID, linewidth=0.6)
    ax.tick_params(colors=TEXT, labelsize=7)
    if unit == "s":
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v * 1000:g} ms"))
    elif unit == "bytes":
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 2**20:g} MiB"))
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, (end - start) / 60)
    if series:
        ax.legend(loc="upper left", fontsize=6.5, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, ncol=2)
    elif not flat:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color=TEXT, transform=ax.transAxes)


def main():
    prometheus, dashboard_path, start, end, events_path, out = sys.argv[1:7]
    start, end = float(start), float(end)
    with open(dashboard_path) as f:
        dashboard = json.load(f)
    with open(events_path) as f:
        events = [(float(at), label) for at, label in (line.rstrip("\n").split(" ", 1) for line in f if line.strip())]

    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    figure = plt.figure(figsize=(16, rows * 0.36 + 1.0), facecolor=BACKGROUND)
    figure.suptitle(
        f"{dashboard['title']}: real Prometheus data, x axis in minutes; dotted lines: "
        + "; ".join(f"{(at - start) / 60:.1f} min {label}" for at, label in events)
        + "",
        color=TEXT,
        fontsize=9,
    )
    grid = figure.add_gridspec(rows, 24, left=0.04, right=0.99, top=1 - 0.6 / (rows * 0.36 + 1.0), bottom=0.03, hspace=3.0, wspace=1.6)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        ax = figure.add_subplot(grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        ax.set_facecolor(PANEL)
        for spine in ax.spines.values():
            spine.set_color(GRID)
        ax.set_title(panel["title"], color=TEXT, fontsize=9, loc="left")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        series = []
        for target in panel["targets"]:
            for result in query_range(prometheus, expand(target["expr"]), start, end):
                series.append((target, result))
        if panel["type"] == "stat":
            stat_panel(ax, panel, series, unit)
        else:
            timeseries_panel(ax, series, unit, start, end, events)
    figure.savefig(out, dpi=90, facecolor=BACKGROUND)
    print(f"render: wrote {out}")


if __name__ == "__main__":
    main()
