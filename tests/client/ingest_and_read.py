"""Drive a running weave-trace-server with the official `weave` SDK HTTP client.

Usage: WTS_URL=http://127.0.0.1:PORT WTS_KEY=... python ingest_and_read.py
Prints one JSON object with what the client read back; the Rust test checks it.
"""

import datetime
import json
import os
import sys

from weave.trace_server_bindings.remote_http_trace_server import RemoteHTTPTraceServer

URL = os.environ["WTS_URL"]
KEY = os.environ["WTS_KEY"]
PROJECT = "acme/client"
T0 = datetime.datetime(2025, 1, 15, 11, 0, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def main() -> None:
    server = RemoteHTTPTraceServer(URL, should_batch=True, password=KEY)
    info = server.server_info()

    trace = "trace-py-1"
    calls = [
        # (id, parent, op, start s, end s, usage, exception)
        ("root", None, "pipeline", 0, 10, {}, None),
        ("llm-1", "root", "llm", 1, 3, {"gpt-4o": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "requests": 1}}, None),
        ("llm-2", "llm-1", "llm", 1.5, 2.5, {"claude-3-5-sonnet": {"input_tokens": 7, "output_tokens": 3, "requests": 1}}, None),
        ("tool", "root", "tool", 4, 5.25, {}, "ValueError: bad tool"),
    ]
    for call_id, parent, op, start, _, _, _ in calls:
        server.call_start({"start": {
            "project_id": PROJECT, "id": call_id, "trace_id": trace, "parent_id": parent,
            "op_name": f"weave:///{PROJECT}/op/{op}:v1", "started_at": at(start),
            "attributes": {"weave": {"client_version": "test"}}, "inputs": {"x": call_id},
        }})
    for call_id, _, _, _, end, usage, exception in calls:
        server.call_end({"end": {
            "project_id": PROJECT, "id": call_id, "ended_at": at(end), "exception": exception,
            "output": {"y": call_id}, "summary": {"usage": usage} if usage else {},
        }})
    server.call_processor.stop_accepting_new_work_and_flush_queue()

    read = {}
    for call_id, *_ in calls:
        res = server.call_read({"project_id": PROJECT, "id": call_id})
        read[call_id] = res.call.model_dump(mode="json") if res.call else None
    count = server.calls_query_stats({"project_id": PROJECT, "filter": {"trace_ids": [trace]}})
    streamed = [c.id for c in server.calls_query_stream({
        "project_id": PROJECT, "filter": {"trace_ids": [trace]}, "sort_by": [{"field": "started_at", "direction": "desc"}],
    })]
    trace_usage = server.trace_usage({"project_id": PROJECT, "filter": {"trace_ids": [trace]}})
    calls_usage = server.calls_usage({"project_id": PROJECT, "call_ids": ["llm-1"]})
    created = server.cost_create({"project_id": PROJECT, "costs": {"gpt-4o": {
        "prompt_token_cost": 0.5, "completion_token_cost": 0.25, "effective_date": "2020-01-01T00:00:00Z"}}})
    priced = server.calls_usage({"project_id": PROJECT, "call_ids": ["root"], "include_costs": True})
    queried = server.cost_query({"project_id": PROJECT, "query": {"$expr": {"$eq": [{"$getField": "id"}, {"$literal": created.ids[0][0]}]}}})
    json.dump({
        "server_info": info.model_dump(mode="json") if hasattr(info, "model_dump") else dict(info),
        "calls": read,
        "count": count.count,
        "streamed": streamed,
        "trace_usage": trace_usage.model_dump(mode="json"),
        "calls_usage": calls_usage.model_dump(mode="json"),
        "cost_ids": created.ids,
        "priced": priced.model_dump(mode="json"),
        "cost_query": queried.model_dump(mode="json"),
    }, sys.stdout)


if __name__ == "__main__":
    main()
