"""The `weave` SDK against a real server (API.md §11): a session-wide server on a fresh database,
and a helper that runs a workflow script in its own process, as a user would run it."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# 52 characters: the SDK refuses keys shorter than 40.
ADMIN_KEY = "wts_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class Server:
    def __init__(self, url: str, database_url: str):
        self.url = url
        self.database_url = database_url

    def post(self, path: str, body: dict, key: str = ADMIN_KEY) -> requests.Response:
        return requests.post(self.url + path, json=body, auth=("api", key), timeout=30)

    def ok(self, path: str, body: dict, key: str = ADMIN_KEY):
        reply = self.post(path, body, key)
        assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text}"
        return reply

    def calls(self, project: str = "acme/app", **query) -> list:
        reply = self.ok("/calls/stream_query", {"project_id": project, **query})
        return [json.loads(line) for line in reply.text.splitlines() if line]

    def status_counts(self) -> dict:
        """Answered requests by status, from the server's Prometheus metrics."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        counts: dict = {}
        for match in re.finditer(r'weave_http_requests_total\{method="[^"]*",route="([^"]*)",status="(\d+)"\} (\d+)', text):
            route, status, n = match.group(1), int(match.group(2)), int(match.group(3))
            counts[(route, status)] = counts.get((route, status), 0) + n
        return counts

    def create_key(self, entity: str, user: str) -> str:
        out = subprocess.run(
            [str(binary()), "keys", "create", "--entity", entity, "--user", user],
            env={**os.environ, "DATABASE_URL": self.database_url}, capture_output=True, text=True, check=True,
        )
        return out.stdout.strip().splitlines()[-1]


def binary() -> Path:
    return Path(os.environ.get("WTS_BIN", ROOT / "target" / "debug" / "weave-trace-server"))


@pytest.fixture(scope="session")
def server():
    if "WTS_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--quiet", "--bin", "weave-trace-server"], cwd=ROOT, check=True)
    name = f"wts_sdk_{os.getpid()}"
    subprocess.run(["psql", DATABASE_URL, "-qc", f"drop database if exists {name} with (force)", "-qc", f"create database {name}"], check=True)
    database_url = with_database(DATABASE_URL, name)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="wts-sdk-server-", suffix=".log", delete=False)
    env = {**os.environ, "DATABASE_URL": database_url, "BIND": f"127.0.0.1:{port}", "BOOTSTRAP_API_KEY": ADMIN_KEY,
           "ROLLUP_REFRESH_SECS": "1"}
    process = subprocess.Popen([str(binary()), "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("the server did not start: " + Path(log.name).read_text())
    yield Server(url, database_url)
    process.terminate()
    process.wait(timeout=30)
    subprocess.run(["psql", DATABASE_URL, "-qc", f"drop database if exists {name} with (force)"], check=False)


# (workflow, seconds, {(route, status): count}) of every run, for the summary at the end.
RUNS: list = []


def pytest_terminal_summary(terminalreporter):
    if not RUNS:
        return
    terminalreporter.section("weave SDK workflows: time and the endpoints each called")
    for name, seconds, answered in RUNS:
        routes = ", ".join(f"{route} {status} x{n}" for (route, status), n in sorted(answered.items()) if route != "/metrics")
        terminalreporter.write_line(f"{name:28} {seconds:6.2f} s  {routes}")


@pytest.fixture
def run_workflow(server, tmp_path):
    """Run tests/sdk/workflows/<name>.py as a user would (only the three variables set), with a
    fresh home and SDK cache; return its JSON output, the seconds it took, and the statuses the
    server answered meanwhile."""

    def run(name: str, *args: str, key: str = ADMIN_KEY):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WEAVE_", "WF_"))}
        env.update({
            "WF_TRACE_SERVER_URL": server.url, "WANDB_BASE_URL": server.url, "WANDB_API_KEY": key,
            "HOME": str(tmp_path), "WEAVE_SERVER_CACHE_DIR": str(tmp_path / "cache"),
        })
        before = server.status_counts()
        started = time.time()
        script = Path(name) if name.endswith(".py") else WORKFLOWS / f"{name}.py"
        done = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        seconds = time.time() - started
        assert done.returncode == 0, done.stderr
        after = server.status_counts()
        answered = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        RUNS.append((" ".join([Path(name).stem, *args]), seconds, answered))
        return json.loads(done.stdout.strip().splitlines()[-1]), seconds, answered

    return run
