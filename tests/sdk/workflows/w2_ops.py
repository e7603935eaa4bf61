"""Workflow 2: nested ops with code capture, an op that raises, LLM-shaped outputs with usage."""
import json
import time

import weave

client = weave.init("acme/app")


@weave.op
def fake_llm(prompt: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [{"message": {"role": "assistant", "content": prompt.upper()}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


@weave.op
def fake_claude(prompt: str) -> dict:
    return {
        "id": "msg-1",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": prompt}],
        "usage": {"input_tokens": 20, "output_tokens": 5},
    }


@weave.op
def boom(x: str) -> str:
    raise ValueError(f"bad {x}")


@weave.op
def pipeline(question: str) -> str:
    a = fake_llm(question)
    b = fake_claude(question)
    try:
        boom("input")
    except ValueError:
        pass
    return a["choices"][0]["message"]["content"] + b["content"][0]["text"]


answer, call = pipeline.call("hello")
call.set_display_name("renamed pipeline")
started = time.time()
client.finish()
print(json.dumps({"root_id": call.id, "trace_id": call.trace_id, "answer": answer, "finish_seconds": time.time() - started}))
