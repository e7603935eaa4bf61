"""Weave parity through the SDK: set_display_name right after an op, remove_display_name,
get_calls(columns=[...]) and get_calls(include_costs=True)."""
import json

import weave

client = weave.init("acme/app")


@weave.op
def llm(prompt: str) -> dict:
    return {"model": "gpt-4o-2024-08-06", "choices": [{"message": {"content": prompt}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}


_, named = llm.call("keep my name")
named.set_display_name("named right away")  # reaches the server before the batch with the call
_, cleared = llm.call("lose my name")
cleared.set_display_name("temporary")
client.flush()
cleared.remove_display_name()
client.flush()

ids = [named.id, cleared.id]
selected = list(client.get_calls(filter={"call_ids": ids}, columns=["id", "output"]))
costed = list(client.get_calls(filter={"call_ids": [named.id]}, include_costs=True))
fresh = {c.id: c.display_name for c in client.get_calls(filter={"call_ids": ids})}
client.finish()
print(json.dumps({
    "named": named.id, "cleared": cleared.id, "display_names": fresh,
    "selected": [{"id": c.id, "inputs": dict(c.inputs), "attributes": dict(c.attributes), "output": c.output} for c in selected],
    "costs": costed[0].summary["weave"].get("costs"),
}, default=str))
