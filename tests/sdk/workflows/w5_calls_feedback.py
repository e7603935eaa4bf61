"""Workflow 5: client.get_calls, client.get_call, feedback (reactions, notes) written and read back,
renames, deleting calls."""
import json
import time

import weave

client = weave.init("acme/app")


@weave.op
def child(x: int) -> int:
    return x * 2


@weave.op
def parent(x: int) -> int:
    return child(x) + child(x + 1)


_, kept = parent.call(1)
_, doomed = parent.call(2)
_, renamed = parent.call(3)
renamed.set_display_name("third run")
_, cleared = parent.call(4)
cleared.set_display_name("temporary")
cleared.remove_display_name()
client.flush()

calls = list(client.get_calls())
one = client.get_call(kept.id)
kept.feedback.add_reaction("👍")
kept.feedback.add_note("looks right")
kept.feedback.add("custom_score", {"score": 5})
client.flush()
feedback = [{"type": f.feedback_type, "payload": dict(f.payload)} for f in one.feedback]
reactions = [dict(f.payload) for f in client.get_feedback(reaction="👍")]
client.delete_call(doomed)
client.flush()
remaining = [c.id for c in client.get_calls(filter={"trace_roots_only": True})]
started = time.time()
client.finish()
print(json.dumps({
    "ids": {"kept": kept.id, "doomed": doomed.id, "renamed": renamed.id, "cleared": cleared.id},
    "calls": [{"id": c.id, "parent_id": c.parent_id, "op_name": c.op_name, "display_name": c.display_name} for c in calls],
    "one": {"id": one.id, "op_name": one.op_name, "output": one.output, "inputs": dict(one.inputs)},
    "feedback": feedback, "reactions": reactions, "remaining_roots": remaining,
    "finish_seconds": time.time() - started,
}, default=str))
