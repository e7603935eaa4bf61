"""Workflow 1: weave.init("entity/project") and weave.init("project") (the key's default entity),
and a key without access to the entity (argv[1] = "forbidden")."""
import json
import time
import sys

import weave

if len(sys.argv) > 1 and sys.argv[1] == "forbidden":
    try:
        weave.init("someone-else/app")
    except Exception as error:  # the SDK's UnableToCreateProjectError
        print(json.dumps({"error_type": type(error).__name__, "error": str(error)}))
        sys.exit(0)
    print(json.dumps({"error": None}))
    sys.exit(0)

project = sys.argv[1] if len(sys.argv) > 1 else "acme/app"
client = weave.init(project)
started = time.time()
client.finish()
finish_seconds = time.time() - started
print(json.dumps({"finish_seconds": finish_seconds, "entity": client.entity, "project": client.project}))
