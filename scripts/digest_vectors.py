#!/usr/bin/env python3
"""Print the digest test vectors of src/domain/digest.rs and the API tests, computed with Weave's
own digest code (weave.trace.serialization.digest, weave 0.54.0). Run with the test venv:
.venv/bin/python scripts/digest_vectors.py"""
from weave.trace.serialization.digest import (
    bytes_digest, compute_object_digest_result, compute_row_digest, compute_table_digest)

OBJECTS = [
    {"a": 1, "b": [1, 2]}, "hello world", [1, "two", {"three": 3}], None, {},
    {"x": 1.0, "y": 1e16, "z": 1e-5, "w": 0.1, "big": 12345678901234567890},
    {"emoji": "👍", "é": "ü", "nl": "a\nb", "slash": "a/b", "ctrl": "\u0001\u007f"},
    {"_type": "MyCfg", "name": "mycfg", "description": None, "temperature": 0.7, "tags": ["x"],
     "_class_name": "MyCfg", "_bases": ["Object", "BaseModel"]},
    {"_type": "CustomWeaveType", "weave_type": {"type": "Op"},
     "files": {"obj.py": "p56UMHX7GShIy4YTzVH2c9Iqu0YM6gh3oZQvZtEA5aI"}},
]
for val in OBJECTS:
    result = compute_object_digest_result(val)
    print(f"object {result.json_val} -> {result.digest} (base {result.base_object_class}, leaf {result.leaf_object_class})")
rows = [{"x": 1}, {"x": 2}, {"x": 3}]
digests = [compute_row_digest(r) for r in rows]
print("rows", digests)
print("table [x1, x2]", compute_table_digest(digests[:2]))
print("table [x1, x2, x3]", compute_table_digest(digests))
print("table []", compute_table_digest([]))
for content in [b"hello", b"", b"import weave\n\n@weave.op\ndef f(x: int) -> int:\n    return x + 1\n"]:
    print("file", repr(content), "->", bytes_digest(content))
