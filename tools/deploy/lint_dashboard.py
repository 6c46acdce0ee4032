#!/usr/bin/env python3
"""Lints a Grafana dashboard JSON against Prometheus and a real /metrics scrape of adak serve.

  lint_dashboard.py DASHBOARD.json RULES_OUT.yaml [SCRAPE.txt]

Checks: the file is JSON with a title, a uid and panels; panel ids are unique and grid positions in the 24-column
grid; every panel has at least one target and every target an expr. Writes every expr (Grafana variables
replaced: $__rate_interval by 5m, $var by .*) as a recording rule into RULES_OUT.yaml for
`promtool check rules` (which parses PromQL). With SCRAPE.txt (the text of GET /metrics): every adak_* metric
an expression names must be a sample name there. Exit 1 with one line per problem.
"""
import json
import re
import sys


def main() -> int:
    dashboard_path, rules_out = sys.argv[1], sys.argv[2]
    scrape = open(sys.argv[3]).read() if len(sys.argv) > 3 else None
    problems = []
    with open(dashboard_path) as f:
        dash = json.load(f)
    for key in ("title", "uid", "panels"):
        if key not in dash:
            problems.append(f"{dashboard_path}: no '{key}'")
    exprs = []
    ids = set()
    for panel in dash.get("panels", []):
        name = f"panel {panel.get('id')} '{panel.get('title')}'"
        if panel.get("id") in ids:
            problems.append(f"{name}: duplicate id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not (0 <= grid.get("x", -1) and grid.get("x", 0) + grid.get("w", 0) <= 24 and grid.get("h", 0) > 0):
            problems.append(f"{name}: gridPos {grid} outside the 24-column grid")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{name}: no targets")
        for t in targets:
            if not t.get("expr"):
                problems.append(f"{name}: target {t.get('refId')} has no expr")
            else:
                exprs.append((name, t["expr"]))
    with open(rules_out, "w") as f:
        f.write("groups:\n  - name: dashboard-lint\n    rules:\n")
        for i, (_, expr) in enumerate(exprs):
            concrete = expr.replace("$__rate_interval", "5m")
            concrete = re.sub(r"\$[A-Za-z_]+", ".*", concrete)
            f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(concrete)}\n")
    if scrape is not None:
        scraped = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", scrape, re.M))
        for name, expr in exprs:
            for metric in sorted(set(re.findall(r"\b(adak_[a-z0-9_]+)\b", expr))):
                if metric not in scraped:
                    problems.append(f"{name}: {metric} is not in the /metrics scrape")
    for p in problems:
        print(f"lint_dashboard: {p}")
    print(f"lint_dashboard: {len(exprs)} expressions in {len(ids)} panels, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
