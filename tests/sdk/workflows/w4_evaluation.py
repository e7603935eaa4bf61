"""Workflow 4: a weave.Model, a weave.Dataset, weave.Evaluation(...).evaluate(model) with op scorers."""
import asyncio
import json
import time

import weave

client = weave.init("acme/app")


class Echo(weave.Model):
    prefix: str

    @weave.op
    def predict(self, question: str) -> str:
        return self.prefix + question.upper()


@weave.op
def exact_match(expected: str, output: str) -> dict:
    return {"match": expected == output}


@weave.op
def length(output: str) -> int:
    return len(output)


rows = [
    {"question": "a", "expected": "ans:A"},
    {"question": "b", "expected": "nope"},
    {"question": "c", "expected": "ans:C"},
]
dataset = weave.Dataset(name="qa", rows=rows)
dataset_ref = weave.publish(dataset)
fetched = weave.ref(dataset_ref.uri()).get()
fetched_rows = [dict(r) for r in fetched.rows]
evaluation = weave.Evaluation(name="qa-eval", dataset=dataset, scorers=[exact_match, length])
summary = asyncio.run(evaluation.evaluate(Echo(prefix="ans:")))
started = time.time()
client.finish()
finish_seconds = time.time() - started
print(json.dumps({"finish_seconds": finish_seconds, "dataset_ref": dataset_ref.uri(), "fetched_rows": fetched_rows, "summary": summary}, default=str))
