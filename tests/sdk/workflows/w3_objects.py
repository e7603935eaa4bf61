"""Workflow 3: weave.publish, weave.ref(uri).get(), weave.ref("name").get(), versions, extra paths."""
import json
import time

import weave

client = weave.init("acme/app")


class Settings(weave.Object):
    temperature: float
    tags: list[str]


first = weave.publish({"a": 1, "b": [1, 2], "nested": {"k": "v"}}, name="cfg")
second = weave.publish({"a": 2, "b": [1, 2], "nested": {"k": "w"}}, name="cfg")
again = weave.publish({"a": 2, "b": [1, 2], "nested": {"k": "w"}}, name="cfg")
obj_ref = weave.publish(Settings(temperature=0.7, tags=["x"]), name="settings")

latest = weave.ref("cfg").get()
by_uri = weave.ref(first.uri()).get()
v0 = weave.ref("cfg:v0").get()
deep = weave.ref(second.uri() + "/key/nested/key/k").get()
settings = weave.ref(obj_ref.uri()).get()
started = time.time()
client.finish()
finish_seconds = time.time() - started
print(json.dumps({"finish_seconds": finish_seconds, 
    "first": first.uri(), "second": second.uri(), "again": again.uri(), "settings_ref": obj_ref.uri(),
    "latest": dict(latest), "by_uri": dict(by_uri), "v0": dict(v0), "deep": deep,
    "settings": {"temperature": settings.temperature, "tags": list(settings.tags), "class": type(settings).__name__},
}))
