"""Measure ingestion through /call/upsert_batch: N calls (start + end each), C concurrent clients.

Usage: python scripts/ingest_load.py URL KEY [--calls 100000] [--batch 500] [--clients 4]
Bodies are built before the clock starts, so the figure is the server's (and Postgres') rate.
"""

import argparse
import base64
import datetime
import http.client
import json
import threading
import time
import urllib.parse


def build_batches(n_calls: int, batch_calls: int, project: str, spacing: float, trace_size: int) -> list[bytes]:
    t0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    bodies = []
    for first in range(0, n_calls, batch_calls):
        items = []
        for i in range(first, min(first + batch_calls, n_calls)):
            base, j = i - i % trace_size, i % trace_size
            trace = f"trace-{base // trace_size}"
            parent = None if j == 0 else f"call-{base + (j - 1) // 4}"  # a 4-ary tree per trace
            started = t0 + datetime.timedelta(seconds=i * spacing)
            ended = started + datetime.timedelta(milliseconds=100 + i % 900)
            items.append({"mode": "start", "req": {"start": {
                "project_id": project, "id": f"call-{i}", "trace_id": trace, "parent_id": parent,
                "op_name": f"weave:///{project}/op/op{i % 20}:v{i % 3}", "started_at": started.isoformat(),
                "attributes": {"env": "bench"}, "inputs": {"prompt": f"question {i}", "n": i},
            }}})
            items.append({"mode": "end", "req": {"end": {
                "project_id": project, "id": f"call-{i}", "ended_at": ended.isoformat(),
                "exception": "boom" if i % 50 == 0 else None, "output": {"answer": f"answer {i}"},
                "summary": {"usage": {f"model-{i % 5}": {"prompt_tokens": i % 1000, "completion_tokens": i % 300, "requests": 1}}},
            }}})
        bodies.append(json.dumps({"batch": items}).encode())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--project", default="acme/load")
    parser.add_argument("--trace-size", type=int, default=10, help="calls per trace")
    parser.add_argument("--spacing", type=float, default=2.5, help="seconds between call starts")
    args = parser.parse_args()

    bodies = build_batches(args.calls, args.batch, args.project, args.spacing, args.trace_size)
    payload_mb = sum(len(b) for b in bodies) / 1e6
    url = urllib.parse.urlparse(args.url)
    auth = "Basic " + base64.b64encode(f"api:{args.key}".encode()).decode()
    lock = threading.Lock()
    errors = []

    def worker() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            with lock:
                if not bodies:
                    return
                body = bodies.pop()
            conn.request("POST", "/call/upsert_batch", body, {"Authorization": auth, "Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                errors.append((response.status, data[:200]))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    print(json.dumps({
        "calls": args.calls, "batch_calls": args.batch, "clients": args.clients, "payload_mb": round(payload_mb, 1),
        "seconds": round(elapsed, 2), "calls_per_s": round(args.calls / elapsed), "errors": len(errors),
        "first_error": repr(errors[0]) if errors else None,
    }))


if __name__ == "__main__":
    main()
