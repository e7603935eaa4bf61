"""The README's "Trace with the weave SDK" quickstart works copied and pasted."""
import re

from conftest import ROOT


def test_the_readme_quickstart_traces_a_call_as_written(server, run_workflow, tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Trace with the weave SDK", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "quickstart.py"
    script.write_text(snippet + "\nimport json\nweave.finish()\nprint(json.dumps({'ok': True}))\n")
    before = {c["id"] for c in server.calls()}
    out, seconds, answered = run_workflow(str(script))
    assert out == {"ok": True}
    assert not {k: n for k, n in answered.items() if k[1] >= 400}
    new = [c for c in server.calls() if c["id"] not in before]
    assert len(new) == 1
    assert re.fullmatch(r"weave:///acme/app/op/add:[A-Za-z0-9]{43}", new[0]["op_name"])
    assert (new[0]["inputs"], new[0]["output"]) == ({"a": 1, "b": 2}, 3)
