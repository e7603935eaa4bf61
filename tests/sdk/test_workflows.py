"""The five workflows of API.md §11, run with the real `weave` package as a user runs them,
each checked against what the server stored."""
import json
import re
from datetime import datetime, timedelta, timezone

from weave.trace.serialization.digest import compute_object_digest_result

DIGEST = r"[A-Za-z0-9]{43}"


def assert_no_errors(answered: dict):
    errors = {k: n for k, n in answered.items() if k[1] >= 400}
    assert not errors, f"the server answered errors: {errors}"


def test_weave_init_resolves_the_entity_registers_the_project_and_refuses_a_foreign_entity(server, run_workflow):
    alice = server.create_key("acme", "alice")
    out, seconds, answered = run_workflow("w1_init", "acme/app", key=alice)
    assert out["finish_seconds"] < 10
    assert (out["entity"], out["project"]) == ("acme", "app")
    assert_no_errors(answered)
    assert answered[("/graphql", 200)] >= 2 and answered[("/server_info", 200)] == 1

    # No entity: the key's default entity (its first).
    out, _, answered = run_workflow("w1_init", "fresh-project", key=alice)
    assert (out["entity"], out["project"]) == ("acme", "fresh-project")
    assert_no_errors(answered)
    project = {"query": "query P($n: String!, $e: String!) { project(name: $n, entityName: $e) { name } }",
               "variables": {"n": "fresh-project", "e": "acme"}}
    assert server.ok("/graphql", project, key=alice).json() == {"data": {"project": {"name": "fresh-project"}}}

    # A key of another entity: the SDK's permission message, from PERMISSION_ERROR.
    out, _, answered = run_workflow("w1_init", "forbidden", key=alice)
    assert out["error_type"] == "UnableToCreateProjectError"
    assert "do not have permission" in out["error"]
    assert_no_errors(answered)


def test_nested_ops_record_calls_with_op_refs_parents_errors_usage_and_code(server, run_workflow):
    out, seconds, answered = run_workflow("w2_ops")
    assert_no_errors(answered)
    assert out["finish_seconds"] < 10
    calls = server.calls(filter={"trace_ids": [out["trace_id"]]})
    by_name = {re.sub(r":.*", "", c["op_name"].rsplit("/", 1)[1]): c for c in calls}
    assert set(by_name) == {"pipeline", "fake_llm", "fake_claude", "boom"}
    for name, call in by_name.items():
        assert re.fullmatch(rf"weave:///acme/app/op/{name}:{DIGEST}", call["op_name"]), call["op_name"]
    root = by_name["pipeline"]
    assert root["id"] == out["root_id"] and root["parent_id"] is None
    assert root["display_name"] == "renamed pipeline"
    assert root["summary"]["weave"]["status"] == "descendant_error"
    assert {by_name[n]["parent_id"] for n in ("fake_llm", "fake_claude", "boom")} == {root["id"]}
    error = json.loads(by_name["boom"]["exception"])
    assert (error["type"], error["message"]) == ("ValueError", "bad input")
    assert root["output"] == "HELLOhello"

    # Usage. The SDK rolls children's usage into the root's own summary.usage, and API.md §3
    # applies unchanged, so the root's own usage rows hold its children's tokens too, and a
    # rollup over the subtree counts them twice.
    assert root["summary"]["usage"]["gpt-4o-mini"]["prompt_tokens"] == 11
    usage = server.ok("/calls/usage", {"project_id": "acme/app", "call_ids": [root["id"]]}).json()["call_usage"][root["id"]]
    assert (usage["gpt-4o-mini"]["prompt_tokens"], usage["gpt-4o-mini"]["completion_tokens"]) == (22, 14)
    assert (usage["claude-3-5-sonnet-20241022"]["prompt_tokens"], usage["claude-3-5-sonnet-20241022"]["total_tokens"]) == (40, 50)
    trace = server.ok("/trace/usage", {"project_id": "acme/app", "filter": {"trace_ids": [out["trace_id"]]}}).json()
    assert trace["call_usage"][by_name["fake_llm"]["id"]]["gpt-4o-mini"]["total_tokens"] == 18
    now = datetime.now(timezone.utc)
    stats = server.ok("/calls/stats", {
        "project_id": "acme/app", "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(minutes=5)).isoformat(),
        "filter": {"trace_ids": [out["trace_id"]]}, "granularity": 3900,
        "call_metrics": [{"metric": "call_count"}, {"metric": "error_count"}], "usage_metrics": [{"metric": "total_tokens"}],
    }).json()
    assert sum(b["sum_call_count"] for b in stats["call_buckets"]) == 4
    assert sum(b["sum_error_count"] for b in stats["call_buckets"]) == 1
    tokens = {b["model"]: b["sum_total_tokens"] for b in stats["usage_buckets"] if b["count"]}
    # The SDK rolls children's usage into the root's summary too: each model counts twice.
    assert tokens == {"gpt-4o-mini": 36, "claude-3-5-sonnet-20241022": 50}

    # The op's code was captured: the op object names its source file by digest.
    name, digest = root["op_name"].rsplit("/", 1)[1].split(":")
    op = server.ok("/obj/read", {"project_id": "acme/app", "object_id": name, "digest": digest}).json()["obj"]
    assert op["kind"] == "op" and op["is_latest"] == 1
    source = server.ok("/file/content", {"project_id": "acme/app", "digest": op["val"]["files"]["obj.py"]})
    assert "def pipeline(question: str)" in source.text


def test_published_objects_read_back_by_ref_name_version_and_extra_path(server, run_workflow):
    out, _, answered = run_workflow("w3_objects")
    assert_no_errors(answered)
    assert out["finish_seconds"] < 10
    first_value = {"a": 1, "b": [1, 2], "nested": {"k": "v"}}
    second_value = {"a": 2, "b": [1, 2], "nested": {"k": "w"}}
    assert out["by_uri"] == first_value and out["v0"] == first_value
    assert out["latest"] == second_value and out["deep"] == "w"
    assert out["again"] == out["second"] != out["first"]
    # Digests are Weave's own.
    assert out["first"].endswith(":" + compute_object_digest_result(first_value).digest)
    assert out["second"].endswith(":" + compute_object_digest_result(second_value).digest)
    versions = server.ok("/objs/query", {"project_id": "acme/app", "filter": {"object_ids": ["cfg"]}}).json()["objs"]
    assert [(v["version_index"], v["is_latest"], v["val"]) for v in versions] == [(0, 0, first_value), (1, 1, second_value)]
    assert out["settings"] == {"temperature": 0.7, "tags": ["x"], "class": "WeaveObject"}
    settings = server.ok("/objs/query", {"project_id": "acme/app", "filter": {"object_ids": ["settings"]}}).json()["objs"][0]
    assert (settings["base_object_class"], settings["leaf_object_class"]) == ("Settings", "Settings")
    assert out["settings_ref"].endswith(":" + settings["digest"])


def test_a_model_a_dataset_and_an_evaluation_store_rows_calls_scores_and_summary(server, run_workflow):
    out, seconds, answered = run_workflow("w4_evaluation")
    assert_no_errors(answered)
    assert out["finish_seconds"] < 10
    rows = [{"question": "a", "expected": "ans:A"}, {"question": "b", "expected": "nope"}, {"question": "c", "expected": "ans:C"}]
    assert out["fetched_rows"] == rows
    assert out["summary"]["exact_match"]["match"] == {"true_count": 2, "true_fraction": 2 / 3}
    assert out["summary"]["length"] == {"mean": 5.0}
    # The dataset's rows live in a table the dataset object names.
    name, digest = out["dataset_ref"].rsplit("/", 1)[1].split(":")
    dataset = server.ok("/obj/read", {"project_id": "acme/app", "object_id": name, "digest": digest}).json()["obj"]
    assert (dataset["base_object_class"], dataset["leaf_object_class"]) == ("Dataset", "Dataset")
    table = dataset["val"]["rows"].rsplit("/", 1)[1]
    stored = server.ok("/table/query", {"project_id": "acme/app", "digest": table}).json()["rows"]
    assert [r["val"] for r in stored] == rows and [r["original_index"] for r in stored] == [0, 1, 2]
    # The evaluation: one root, a predict_and_score per row, each with the model and both scorers.
    evaluations = server.calls(filter={"op_names": ["weave:///acme/app/op/Evaluation.evaluate:*"]})
    assert len(evaluations) == 1 and evaluations[0]["ended_at"] is not None
    root = evaluations[0]
    assert root["output"]["exact_match"]["match"]["true_count"] == 2
    trace = server.calls(filter={"trace_ids": [root["trace_id"]]})
    names = [re.sub(r":.*", "", c["op_name"].rsplit("/", 1)[1]) for c in trace]
    assert names.count("Evaluation.predict_and_score") == 3 and names.count("Echo.predict") == 3
    assert names.count("exact_match") == 3 and names.count("length") == 3 and names.count("Evaluation.summarize") == 1
    # Scores were also written as feedback on the predictions.
    scores = server.ok("/feedback/query", {"project_id": "acme/app", "query": {"$expr": {"$eq": [
        {"$getField": "feedback_type"}, {"$literal": "wandb.runnable.exact_match"}]}}}).json()["result"]
    assert sorted(s["payload"]["output"]["match"] for s in scores) == [False, True, True]


def test_calls_and_feedback_read_back_and_deleted_calls_disappear_with_their_children(server, run_workflow):
    out, _, answered = run_workflow("w5_calls_feedback")
    assert_no_errors(answered)
    assert out["finish_seconds"] < 10
    ids = out["ids"]
    listed = {c["id"]: c for c in out["calls"]}
    assert {ids["kept"], ids["doomed"], ids["renamed"]} <= set(listed)
    assert listed[ids["renamed"]]["display_name"] == "third run"
    assert out["one"]["output"] == 6 and out["one"]["inputs"] == {"x": 1}
    assert sorted(f["type"] for f in out["feedback"]) == ["custom_score", "wandb.note.1", "wandb.reaction.1"]
    reaction = next(f["payload"] for f in out["feedback"] if f["type"] == "wandb.reaction.1")
    assert reaction == {"emoji": "👍", "alias": ":thumbs_up:", "detoned": "👍", "detoned_alias": ":thumbs_up:"}
    assert out["reactions"] == [reaction]
    assert ids["doomed"] not in out["remaining_roots"] and ids["kept"] in out["remaining_roots"]
    assert server.calls(filter={"parent_ids": [ids["doomed"]]}) == []
    # The feedback is stored against the call's ref.
    stored = server.ok("/feedback/query", {"project_id": "acme/app", "query": {"$expr": {"$eq": [
        {"$getField": "weave_ref"}, {"$literal": f"weave:///acme/app/call/{ids['kept']}"}]}}}).json()["result"]
    assert sorted(f["feedback_type"] for f in stored) == ["custom_score", "wandb.note.1", "wandb.reaction.1"]
    assert all(f["wb_user_id"] == "admin" for f in stored)


def test_renames_column_subsets_and_costs_read_through_the_sdk_as_weave_answers(server, run_workflow):
    out, _, answered = run_workflow("w6_parity")
    assert_no_errors(answered)
    assert out["display_names"] == {out["named"]: "named right away", out["cleared"]: None}
    for call in out["selected"]:
        assert call["inputs"] == {} and call["attributes"] == {}
        assert call["output"]["model"] == "gpt-4o-2024-08-06"
    cost = out["costs"]["gpt-4o-2024-08-06"]
    assert (cost["prompt_tokens"], cost["completion_tokens"], cost["pricing_level"]) == (1000, 100, "default")
    assert abs(cost["prompt_tokens_total_cost"] - 1000 * cost["prompt_token_cost"]) < 1e-12
    assert cost["created_by"] and cost["created_at"]
