"""Ask a running weave-trace-server for /calls/stats through the official `weave` client.

Usage: WTS_URL=... WTS_KEY=... python call_stats.py
Prints the parsed CallStatsResponse as JSON; the Rust test checks it.
"""

import json
import os
import sys

from weave.trace_server_bindings.remote_http_trace_server import RemoteHTTPTraceServer


def main() -> None:
    server = RemoteHTTPTraceServer(os.environ["WTS_URL"], password=os.environ["WTS_KEY"])
    res = server.call_stats({
        "project_id": "acme/app",
        "start": "2025-03-09T05:00:00Z",
        "end": "2025-03-09T09:00:00Z",
        "granularity": 3600,
        "timezone": "America/New_York",
        "call_metrics": [{"metric": "latency_ms", "aggregations": ["avg"], "percentiles": [50, 99.9]}, {"metric": "call_count"}],
        "usage_metrics": [{"metric": "total_tokens", "aggregations": ["sum"]}],
    })
    json.dump({"type": type(res).__name__, "res": res.model_dump(mode="json")}, sys.stdout)


if __name__ == "__main__":
    main()
