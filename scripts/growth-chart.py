#!/usr/bin/env python3
"""Draw the growth of the dashboard questions from a benchmark result (bench/results/*.json)
as a small PNG: p50 per question at each checkpoint, calls on a log axis.

    .venv/bin/pip install matplotlib
    .venv/bin/python scripts/growth-chart.py bench/results/<run>.json docs/growth.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source) as f:
        report = json.load(f)
    points = [p for p in report["growth"] if "questions" in p]
    calls = [p["calls"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for name in points[0]["questions"]:
        ax.plot(calls, [p["questions"][name]["p50_ms"] for p in points], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(calls, [f"{c / 1e6:g}M" for c in calls])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("calls in the project (all inside the 30-day window)")
    ax.set_ylabel("p50 ms")
    cores = report.get("cores", "?")
    version = report.get("postgres", {}).get("server_version", "?").split(" ")[0]
    ax.set_title(f"/calls/stats as the project grows ({cores} cores, PostgreSQL {version})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
