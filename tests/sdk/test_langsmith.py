"""LangSmith's own client against the server (API.md §12): `Client.get_run_stats`, by project id
and by project name, compared with values worked out by hand."""
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import requests
from langsmith import Client

from conftest import ROOT, binary

PROJECT = "acme/ls"


def start(call_id, op, started_at, parent=None, trace="t1", attributes=None):
    return {"mode": "start", "req": {"start": {
        "project_id": PROJECT, "id": call_id, "trace_id": trace, "parent_id": parent,
        "op_name": f"weave:///acme/ls/op/{op}:v1", "started_at": started_at,
        "attributes": attributes or {}, "inputs": {}}}}


def end(call_id, ended_at, **extra):
    return {"mode": "end", "req": {"end": {"project_id": PROJECT, "id": call_id, "ended_at": ended_at,
                                             "summary": extra.pop("summary", {}), **extra}}}


@pytest.fixture(scope="module")
def project(server):
    """Roots a1 (agent, 2 s), a3 (agent, 4 s, failed), a4 (other, 1 s); a2 (chat, 1 s) under a1
    used 10 input and 5 output tokens of `ls-model` (0.01 and 0.02 per token)."""
    key = server.create_key("acme", "bob")
    server.ok("/cost/create", {"project_id": PROJECT, "costs": {"ls-model": {
        "prompt_token_cost": 0.01, "completion_token_cost": 0.02, "effective_date": "2024-01-01T00:00:00Z"}}}, key)
    server.ok("/call/upsert_batch", {"batch": [
        start("a1", "agent", "2025-02-01T10:00:00Z"), end("a1", "2025-02-01T10:00:02Z"),
        start("a2", "chat", "2025-02-01T10:00:00.500Z", parent="a1"),
        end("a2", "2025-02-01T10:00:01.500Z", summary={"usage": {"ls-model": {"input_tokens": 10, "output_tokens": 5}}}),
        start("a3", "agent", "2025-02-01T11:00:00Z", trace="t2"), end("a3", "2025-02-01T11:00:04Z", exception="boom"),
        start("a4", "other", "2025-02-01T12:00:00Z", trace="t3"), end("a4", "2025-02-01T12:00:01Z"),
    ]}, key)
    return key


def client(server, key):
    return Client(api_url=server.url + "/api/v1", api_key=key)


def test_get_run_stats_by_project_id_matches_the_hand_computed_numbers(server, project):
    sessions = requests.get(server.url + "/api/v1/sessions", params={"name": "ls"},
                            headers={"x-api-key": project}, timeout=10).json()
    assert [s["extra"]["project_id"] for s in sessions] == [PROJECT]
    stats = client(server, project).get_run_stats(
        project_ids=[sessions[0]["id"]], is_root=True, start_time=datetime(2025, 2, 1))
    # Root latencies 1, 2, 4 s: the middle, and percentile_cont's 99th.
    assert stats["run_count"] == 3
    assert stats["latency_p50"] == 2.0
    assert stats["latency_p99"] == 2.0 + (0.99 * 2 - 1) * (4.0 - 2.0)
    assert stats["error_rate"] == 1 / 3
    assert stats["total_tokens"] == 0, "the tokens are the child's"
    assert stats["last_run_start_time"] == "2025-02-01T12:00:00Z"
    every = client(server, project).get_run_stats(project_ids=[sessions[0]["id"]])
    assert (every["run_count"], every["total_tokens"], every["prompt_tokens"], every["completion_tokens"]) == (4, 15, 10, 5)
    assert every["total_cost"] == 10 * 0.01 + 5 * 0.02
    assert every["median_tokens"] == 15 and every["unpriced_count"] == 0


def test_get_run_stats_by_project_name_with_filters(server, project):
    c = client(server, project)
    assert c.get_run_stats(project_names=["ls"], filter='eq(name, "agent")')["run_count"] == 2
    assert c.get_run_stats(project_names=["ls"], error=True)["run_count"] == 1
    assert c.get_run_stats(project_names=["ls"], trace_filter='eq(name, "agent")', is_root=False)["run_count"] == 1
    window = c.get_run_stats(project_names=["ls"], start_time=datetime(2025, 2, 1, 10, 30, tzinfo=timezone.utc),
                             end_time=datetime(2025, 2, 1, 12, tzinfo=timezone.utc))
    assert window["run_count"] == 1, "only a3 starts in [10:30, 12:00)"
    assert c.get_run_stats(project_names=["ls"], run_type="llm")["run_count"] == 1, "a2 has usage and no kind"


def test_the_client_reports_a_foreign_project_and_a_bad_filter(server, project):
    import langsmith.utils
    c = client(server, project)
    with pytest.raises(langsmith.utils.LangSmithNotFoundError):
        c.get_run_stats(project_names=["no-such-project"])
    with pytest.raises(langsmith.utils.LangSmithError, match="at character"):
        c.get_run_stats(project_names=["ls"], filter="eq(name, ")


def test_the_readme_langsmith_snippet_prints_what_the_api_answers(server, tmp_path):
    subprocess.run([str(binary()), "demo"], env={**os.environ, "DATABASE_URL": server.database_url},
                   check=True, capture_output=True)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### LangSmith run statistics", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    key = server.create_key("demo", "carol")
    script = tmp_path / "ls_snippet.py"
    script.write_text(snippet.replace("http://127.0.0.1:6345", server.url).replace("<your key>", key))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    expected = re.search(r"prints\n```\n(.*?)```", section, re.S).group(1)
    assert out.stdout == expected
