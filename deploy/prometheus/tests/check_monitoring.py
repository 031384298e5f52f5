#!/usr/bin/env python3
"""Checks kghost's alert rules and Grafana dashboard against the runbook and a real scrape.

  check_monitoring.py --repo ROOT [--scrape METRICS.txt]

- every alert the project promises exists in deploy/prometheus/alerts.yaml, with a
  runbook_url whose anchor is a heading of docs/runbook.md (and the runbook's own #links
  resolve);
- every PromQL expression of the dashboard parses (loaded as recording rules into
  `promtool check rules`);
- with --scrape: every metric an alert or a panel names is in that scrape of a real kghost.
  Names of a plugin the scrape shows as not loaded (kgents_plugin_up) are reported and skipped,
  as are the few metrics that come from outside kghost (EXTERNAL).
Exits 1 listing every problem found.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ALERTS = [
    "NATSCircuitOpen", "NATSCircuitOpenCritical", "NATSPodNotReady", "OpenMeterFlushErrors",
    "OpenMeterBufferFull", "OpenMeterAuthFailing", "StripeWebhookErrors",
    "StripeWebhookDeadLetters", "HighAPILatency", "APIHighLatency", "APIErrorRate", "PluginDown",
    "StoreDegraded",
]
# Metrics that another exporter provides, with who.
EXTERNAL = {"kube_pod_status_ready": "kube-state-metrics"}
# Metric name prefixes owned by one plugin: checked only when that plugin is up in the scrape.
PLUGIN_PREFIXES = {
    "kgents_openmeter_": "billing",
    "kgents_nats_": "streaming",
    "kgents_streaming_": "streaming",
    "kgents_stripe_": "webhooks",
}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
    "or", "unless", "inf", "nan", "le",
}


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def runbook_anchors(path):
    anchors = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^#{1,6}\s+(.*)$", line)
            if m:
                anchors.add(github_anchor(m.group(1)))
    return anchors


def metric_names(expr):
    """Metric names an expression selects (not functions, labels, keywords or numbers)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)        # strings
    e = re.sub(r"\{[^}]*\}", "", e)                      # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                     # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word.lower() in PROMQL_WORDS:
            continue
        before = e[:m.start()]
        if re.search(r"[0-9.]$", before):
            continue  # part of a number such as 1e3
        names.add(word)
    return names


def scrape_names(path):
    """Sample names in a Prometheus text scrape, and the plugins kgents_plugin_up shows up."""
    names, up = set(), set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
            names.add(name)
            m = re.match(r'kgents_plugin_up\{.*plugin="([^"]+)".*\}\s+1\s*$', line)
            if m:
                up.add(m.group(1))
    return names, up


def exported(name, names):
    if name in names:
        return True
    # A histogram is selected by its family name only through its series.
    return any(name + suffix in names for suffix in ("_bucket", "_count", "_sum"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--scrape")
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args()

    alerts_path = os.path.join(args.repo, "deploy/prometheus/alerts.yaml")
    dash_path = os.path.join(args.repo, "deploy/grafana/dashboard.json")
    runbook_path = os.path.join(args.repo, "docs/runbook.md")
    problems, notes = [], []

    anchors = runbook_anchors(runbook_path)
    with open(runbook_path, encoding="utf-8") as f:
        for link in re.findall(r"\]\(#([^)]+)\)", f.read()):
            if link not in anchors:
                problems.append(f"docs/runbook.md links to #{link}, which is no heading")

    with open(alerts_path, encoding="utf-8") as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    exprs = [(f"alert {name}", r["expr"]) for name, r in alerts.items()]
    for name in ALERTS:
        if name not in alerts:
            problems.append(f"alert {name} is missing from deploy/prometheus/alerts.yaml")
    for name, r in alerts.items():
        url = r.get("annotations", {}).get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if not page.endswith("docs/runbook.md") or not anchor:
            problems.append(f"alert {name}: runbook_url {url!r} is not docs/runbook.md#anchor")
        elif anchor not in anchors:
            problems.append(f"alert {name}: docs/runbook.md has no heading for #{anchor}")

    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    dash_exprs = []
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            if t.get("expr"):
                dash_exprs.append((f"panel {p['title']!r} {t.get('refId', '')}", t["expr"]))
        for link in p.get("links", []):
            url = link.get("url", "")
            if "docs/runbook.md#" in url and url.partition("#")[2] not in anchors:
                problems.append(f"panel {p['title']!r} links to a missing runbook anchor {url}")
    if not dash_exprs:
        problems.append("the dashboard has no PromQL expression")
    exprs += dash_exprs

    # promtool parses each dashboard expression as a recording rule.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(dash_exprs)
        ]}]}, tmp)
    try:
        r = subprocess.run([args.promtool, "check", "rules", tmp.name], capture_output=True,
                           text=True)
        if r.returncode != 0:
            problems.append("promtool check rules on the dashboard's expressions failed:\n" +
                            r.stdout + r.stderr)
    finally:
        os.unlink(tmp.name)

    if args.scrape:
        names, up = scrape_names(args.scrape)
        for where, e in exprs:
            for name in sorted(metric_names(e)):
                if name in EXTERNAL:
                    continue
                owner = next((p for pre, p in PLUGIN_PREFIXES.items() if name.startswith(pre)),
                             None)
                if owner and owner not in up:
                    notes.append(f"{where}: {name} not checked: plugin {owner} is not up in "
                                 "the scrape")
                    continue
                if not exported(name, names):
                    problems.append(f"{where}: {name} is not in a real kghost scrape")

    for n in sorted(set(notes)):
        print("note:", n)
    for p in problems:
        print("PROBLEM:", p)
    print(f"checked {len(alerts)} alerts, {len(dash_exprs)} dashboard expressions"
          + (", metric names against the scrape" if args.scrape else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
