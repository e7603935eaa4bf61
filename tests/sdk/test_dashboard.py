"""The dashboard (/ui/) in headless Chromium, driven by Playwright, on the `demo` project: what the
pages show is checked against the API's own answers. Writes the README's screenshots to docs/."""
import os
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from conftest import ROOT, binary

PROJECT = "demo/app"
NY = "America/New_York"
# The demo's three days, New York midnight to midnight.
START, END = "2025-03-08T05:00:00Z", "2025-03-11T04:00:00Z"
OVERVIEW = f"#/demo/app?range=custom&start={START}&end={END}&tz={NY}"


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is needed for the dashboard tests: apt-get install chromium (.ci/run does)")
    return path


@pytest.fixture(scope="module")
def demo(server):
    subprocess.run([str(binary()), "demo"], env={**os.environ, "DATABASE_URL": server.database_url},
                   check=True, capture_output=True)
    return server.create_key("demo", "dana")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id=NY)
    page = context.new_page()
    page.requested = []
    page.errors = []
    page.on("request", lambda r: page.requested.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    host = urlsplit(server.url).netloc
    assert all(urlsplit(u).netloc == host for u in page.requested if not u.startswith("data:")), \
        [u for u in page.requested if urlsplit(u).netloc != host]
    assert not page.errors, page.errors
    context.close()


def api(server, key, path, body):
    reply = requests.post(server.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def sign_in(page, server, key):
    page.goto(server.url + "/ui/")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=project-row]")


def test_a_wrong_key_is_refused_with_a_message(page, server, demo):
    page.goto(server.url + "/ui/")
    page.fill("#key", "wts_not_a_key_of_this_server")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=signin-error]:not(:empty)")
    assert "not accepted" in page.text_content("[data-testid=signin-error]")
    assert page.evaluate("sessionStorage.length") == 0


def test_the_overview_shows_the_api_s_numbers(page, server, demo):
    sign_in(page, server, demo)
    started = time.time()
    page.goto(server.url + "/ui/" + OVERVIEW)
    page.wait_for_selector("[data-testid=op-table]")
    print(f"\ndemo overview drawn in {time.time() - started:.2f} s")

    # Tiles: counts from daily buckets, percentiles from one bucket over the window.
    daily = api(server, demo, "/calls/stats", {"project_id": PROJECT, "start": START, "end": END, "granularity": 86400,
        "timezone": NY, "call_metrics": [{"metric": "call_count"}, {"metric": "error_count"}],
        "usage_metrics": [{"metric": "total_tokens"}, {"metric": "total_cost"}]})
    calls = sum(b["sum_call_count"] for b in daily["call_buckets"])
    errors = sum(b["sum_error_count"] for b in daily["call_buckets"])
    tokens = sum(u["sum_total_tokens"] for u in daily["usage_buckets"])
    unpriced = sum(u["unpriced_count"] for u in daily["usage_buckets"])
    whole = api(server, demo, "/api/v1/runs/stats", {"session": [PROJECT], "start_time": START, "end_time": END,
        "select": ["run_count", "latency_p50", "latency_p99", "total_cost"]})
    tile = lambda name: page.get_attribute(f"[data-testid=tile-{name}]", "data-value")
    assert int(tile("calls")) == calls == whole["run_count"]
    assert float(tile("error-rate")) == pytest.approx(errors / calls, rel=1e-12)
    assert float(tile("p50")) == pytest.approx(whole["latency_p50"] * 1000, rel=1e-12)
    assert float(tile("p99")) == pytest.approx(whole["latency_p99"] * 1000, rel=1e-12)
    assert int(tile("tokens")) == tokens
    assert float(tile("cost")) == pytest.approx(whole["total_cost"], rel=1e-9)
    assert int(tile("unpriced")) == unpriced > 0
    assert "add one" in page.text_content("[data-testid=tile-unpriced]")

    # Charts: one point per bucket of the automatic granularity (3 days → 6 hours).
    series = api(server, demo, "/calls/stats", {"project_id": PROJECT, "start": START, "end": END, "timezone": NY,
        "call_metrics": [{"metric": "call_count"}]})
    assert series["granularity"] == 21600
    for chart in ["calls", "latency", "tokens", "cost"]:
        assert page.get_attribute(f"[data-testid=chart-{chart}]", "data-points") == str(len(series["call_buckets"]))
    assert page.get_attribute("[data-testid=chart-tokens]", "data-series") == "3", "one series per model"

    # Per-op table: one row per op with calls, each counted as LangSmith-style stats count it.
    by_name = api(server, demo, "/api/v1/runs/stats", {"session": [PROJECT], "start_time": START, "end_time": END,
        "select": ["run_count"], "group_by": {"attribute": "name", "max_groups": 100}})
    rows = page.query_selector_all("[data-testid=op-row]")
    shown = {r.query_selector("td a").text_content(): int(r.get_attribute("data-calls")) for r in rows}
    assert shown == {name: s["run_count"] for name, s in by_name.items()}
    counts = [int(r.get_attribute("data-calls")) for r in rows]
    assert counts == sorted(counts, reverse=True), "sorted by calls"
    page.click("[data-testid=sort-p99]")
    page.wait_for_selector("[data-testid=sort-p99].sorted")
    assert "sort=p99" in page.url, "the sort is in the URL"
    page.screenshot(path=str(ROOT / "docs" / "dashboard-overview.png"), full_page=True)


def test_a_dst_day_is_labelled_in_new_york_time(page, server, demo):
    sign_in(page, server, demo)
    # 00:00 EST to 13:00 EDT: twelve hours, so hourly buckets, and no 02:00 that night.
    page.goto(server.url + f"/ui/#/demo/app?range=custom&start=2025-03-09T05:00:00Z&end=2025-03-09T17:00:00Z&tz={NY}")
    page.wait_for_selector("[data-testid=chart-table-calls]", state="attached")
    labels = page.eval_on_selector_all("[data-testid=chart-table-calls] tbody tr td:first-child", "tds => tds.map(t => t.textContent)")
    assert labels[:3] == ["2025-03-09 00:00", "2025-03-09 01:00", "2025-03-09 03:00"]
    assert len(labels) == 12 and not any(label.endswith("02:00") for label in labels)
    assert page.get_attribute("[data-testid=chart-calls]", "data-points") == "12"


def test_a_trace_shows_its_waterfall_with_usage(page, server, demo):
    sign_in(page, server, demo)
    page.goto(server.url + f"/ui/#/demo/app/call/q-0000?tz={NY}")
    page.wait_for_selector("[data-testid=wf-row]")
    calls = requests.post(server.url + "/calls/stream_query", json={"project_id": PROJECT, "filter": {"trace_ids": ["trace-0000"]}},
                          headers={"Authorization": f"Bearer {demo}"}, timeout=30).text.splitlines()
    rolled = api(server, demo, "/calls/usage", {"project_id": PROJECT, "call_ids": ["q-0000"]})["call_usage"]["q-0000"]
    rows = page.query_selector_all("[data-testid=wf-row]")
    assert len(rows) == len(calls) == 5
    root = rows[0]
    assert root.get_attribute("data-call-id") == "q-0000"
    assert int(root.get_attribute("data-total-tokens")) == sum(m["total_tokens"] for m in rolled.values())
    assert int(root.get_attribute("data-own-tokens")) == 0
    detail = page.text_content("[data-testid=call-detail]")
    assert "question 0" in detail and "answer 0" in detail
    assert page.query_selector("[data-testid=rolled-usage]") is not None
    page.screenshot(path=str(ROOT / "docs" / "dashboard-trace.png"), full_page=True)
    # A child: its own usage is its whole usage.
    rows[2].click()
    page.wait_for_selector("[data-testid=own-usage]")
    assert rows[2].get_attribute("data-own-tokens") == rows[2].get_attribute("data-total-tokens") != "0"


def test_the_running_call_shows_as_running(page, server, demo):
    sign_in(page, server, demo)
    running = requests.post(server.url + "/calls/stream_query", json={"project_id": PROJECT, "filter": {"trace_roots_only": True},
        "query": {"$expr": {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "running"}]}}},
        headers={"Authorization": f"Bearer {demo}"}, timeout=30).text.splitlines()
    assert len(running) == 1
    call_id = __import__("json").loads(running[0])["id"]
    page.goto(server.url + "/ui/#/demo/app/traces?status=running")
    page.wait_for_selector("[data-testid=trace-row]")
    assert [r.get_attribute("data-call-id") for r in page.query_selector_all("[data-testid=trace-row]")] == [call_id]
    page.click(f"[data-testid=trace-row] a")
    page.wait_for_selector(f"[data-testid=wf-row][data-call-id='{call_id}']")
    row = page.query_selector(f"[data-testid=wf-row][data-call-id='{call_id}']")
    assert row.get_attribute("data-status") == "running"
    assert "running" in row.text_content()
    assert page.query_selector(f"[data-testid=wf-row][data-call-id='{call_id}'] .wf-bar.running") is not None


def test_the_sdk_s_links_open_the_dashboard(page, server, demo):
    sign_in(page, server, demo)
    page.goto(server.url + "/demo/app/r/call/q-0000")
    page.wait_for_selector("[data-testid=waterfall]")
    assert page.url.endswith("/ui/#/demo/app/call/q-0000")
    page.goto(server.url + "/demo/app/weave")
    page.wait_for_selector("[data-testid=tile-calls]")
    assert page.url.endswith("/ui/#/demo/app")
