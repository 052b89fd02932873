#!/usr/bin/env python3
"""check_monitoring.py ALERTS_YML DASHBOARD_JSON METRICS_TXT

The monitoring files of dist/monitoring/ against a real server's /metrics
(METRICS_TXT, scraped by check_monitoring.sh): the alert rules are YAML in
Prometheus's rule-file shape, each alert with an expression, a summary and a
runbook naming a section of docs/monitoring.md that exists; the dashboard is
JSON with panels whose targets have expressions; and every etagkv_* metric
either file names is one the server exposes (a sample, or a histogram's
_bucket/_sum/_count).  Exits 1 listing every problem.
"""
import json
import os
import re
import sys

import yaml

NAME = re.compile(r"\betagkv_[a-z0-9_]+")


def exposed(path):
    names = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
            elif line.strip() and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def anchors(md_path):
    out = set()
    with open(md_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                title = line.lstrip("#").strip().lower()
                out.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return out


def main():
    alerts_path, dash_path, metrics_path = sys.argv[1:4]
    docs = os.path.join(os.path.dirname(os.path.abspath(alerts_path)),
                        "..", "..", "docs", "monitoring.md")
    problems, exprs = [], []
    with open(alerts_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    sections = anchors(docs)
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    if not alerts:
        problems.append("no alert rules")
    for r in alerts:
        name = r.get("alert", "?")
        for key in ("alert", "expr", "for", "labels", "annotations"):
            if key not in r:
                problems.append(f"{name}: no {key}")
        ann = r.get("annotations", {})
        if not ann.get("summary"):
            problems.append(f"{name}: no summary")
        runbook = ann.get("runbook", "")
        if not runbook.startswith("docs/monitoring.md#"):
            problems.append(f"{name}: runbook is not a docs/monitoring.md section")
        elif runbook.split("#", 1)[1] not in sections:
            problems.append(f"{name}: docs/monitoring.md has no section #{runbook.split('#', 1)[1]}")
        exprs.append((name, str(r.get("expr", ""))))
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)
    panels = dash.get("panels", [])
    if not panels:
        problems.append("the dashboard has no panels")
    for p in panels:
        targets = p.get("targets", [])
        if not targets:
            problems.append(f"panel {p.get('title')}: no targets")
        for t in targets:
            exprs.append((f"panel {p.get('title')}", t.get("expr", "")))
    for t in dash.get("templating", {}).get("list", []):
        if isinstance(t.get("query"), str):
            exprs.append((f"variable {t['name']}", t["query"]))
    have = exposed(metrics_path)
    checked = 0
    for where, e in exprs:
        for m in NAME.findall(e):
            checked += 1
            if m not in have:
                problems.append(f"{where}: {m} is not in /metrics")
    for p in problems:
        print("check_monitoring:", p, file=sys.stderr)
    print(f"check_monitoring: {len(alerts)} alerts, {len(panels)} panels, "
          f"{checked} metric references checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
