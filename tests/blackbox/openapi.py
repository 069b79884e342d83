"""Validates Zulip API responses against the OpenAPI document of the spec.

The document (tests/reference/zulip-openapi-presence.json, OpenAPI 3.0) is
turned into plain JSON Schema (draft 7) for the `jsonschema` package:

- `$ref`s are inlined (they are all local, and acyclic);
- `nullable: true` becomes a "null" alternative of `type` (and of `enum`);
- OpenAPI-only annotations (`example`, `examples`, `deprecated`,
  `discriminator`, `xml`, `externalDocs`, `x-*`) are dropped;
- OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become
  draft-7 numbers;
- everything else, notably `additionalProperties: false`, is kept as is.

Error bodies are checked against the error schemas of the path and status if
the document has them; it documents none for the presence endpoints, so they
are checked against the shared error components (MissingArgumentError for
REQUEST_VARIABLE_MISSING, CodedError otherwise). Shapes that the behaviour
spec (zulip-presence.md) defines and the OpenAPI subset lacks are added
below in EXTENSIONS; they only ever add, never loosen.
"""

import copy
import json
import os
import re
import urllib.parse

import jsonschema

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_document():
    env = os.environ.get("PRESENCE_OPENAPI")
    candidates = [env] if env else []
    # The repository's own copy (tests/reference/, Apache-2.0, see its
    # README); PRESENCE_OPENAPI names another one when set.
    candidates += [
        os.path.join(_HERE, "..", "reference", "zulip-openapi-presence.json"),
    ]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    raise RuntimeError("zulip-openapi-presence.json not found; tried "
                       + ", ".join(c for c in candidates if c))


DOCUMENT_PATH = _find_document()
with open(DOCUMENT_PATH, encoding="utf-8") as _f:
    DOCUMENT = json.load(_f)


def _add_register_user_status(doc):
    """Zulip's full document has /register's `user_status` (present when
    "user_status" is fetched: user id -> status object); the presence
    subset left it out, and presenced serves it since issue #18. Added with
    Zulip's shape; nothing else changes."""
    schema = (doc["paths"]["/register"]["post"]["responses"]["200"]
              ["content"]["application/json"]["schema"])
    props = schema["allOf"][1]["properties"]
    if "user_status" in props:
        return
    props["user_status"] = {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "away": {"type": "boolean"},
                "status_text": {"type": "string"},
                "emoji_name": {"type": "string"},
                "emoji_code": {"type": "string"},
                "reaction_type": {"enum": ["unicode_emoji", "realm_emoji",
                                           "zulip_extra_emoji"]},
            },
        },
    }


_add_register_user_status(DOCUMENT)

_DROP = {"example", "examples", "deprecated", "discriminator", "xml",
         "externalDocs", "readOnly", "writeOnly"}
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("not", "additionalProperties", "items", "additionalItems",
               "propertyNames", "contains", "if", "then", "else")


def _resolve_pointer(doc, ref):
    if not ref.startswith("#/"):
        raise ValueError(f"non-local $ref: {ref}")
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def to_json_schema(schema, doc=DOCUMENT, _stack=()):
    """OpenAPI 3.0 Schema Object -> draft-7 JSON Schema (a new object)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise TypeError(f"not a schema: {schema!r}")
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in _stack:
            raise ValueError(f"recursive $ref {ref} is not supported")
        # Siblings of $ref are ignored in OpenAPI 3.0.
        return to_json_schema(_resolve_pointer(doc, ref), doc, _stack + (ref,))
    out = {}
    for key, value in schema.items():
        if key in _DROP or key.startswith("x-") or key == "nullable":
            continue
        if key in _SCHEMA_MAPS:
            out[key] = {k: to_json_schema(v, doc, _stack)
                        for k, v in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [to_json_schema(v, doc, _stack) for v in value]
        elif key in _SCHEMA_ONE:
            if isinstance(value, list):  # tuple-form items
                out[key] = [to_json_schema(v, doc, _stack) for v in value]
            else:
                out[key] = to_json_schema(value, doc, _stack)
        else:
            out[key] = copy.deepcopy(value)
    for bound, limit in (("exclusiveMinimum", "minimum"),
                         ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            if out[bound] and limit in out:
                out[bound] = out.pop(limit)
            else:
                del out[bound]
    if schema.get("nullable") is True:
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = t + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


def component(name):
    return to_json_schema({"$ref": f"#/components/schemas/{name}"})


# Shapes defined by zulip-presence.md that the OpenAPI subset does not have.
EXTENSIONS = {
    # Section 2.0: wrong HTTP method -> 405
    # {"result":"error","msg":"Method Not Allowed","allowed_methods":[...]},
    # with no "code" (so CodedError does not apply).
    "MethodNotAllowedError": {
        "allOf": [
            component("JsonResponseBase"),
            {
                "type": "object",
                "required": ["result", "msg", "allowed_methods"],
                "additionalProperties": False,
                "properties": {
                    "result": {"enum": ["error"]},
                    "msg": {"type": "string"},
                    "allowed_methods": {
                        "type": "array", "items": {"type": "string"},
                        "minItems": 1},
                },
            },
        ],
    },
    # Section 2.0, rate limiting: CodedError plus "retry-after".
    "RateLimitError": {
        "allOf": [
            to_json_schema({"$ref": "#/components/schemas/CodedErrorBase"}),
            {
                "additionalProperties": False,
                "properties": {
                    "result": {}, "msg": {}, "code": {"enum": ["RATE_LIMIT_HIT"]},
                    "retry-after": {"type": "number"},
                },
                "required": ["retry-after"],
            },
        ],
    },
}

_TEMPLATES = [(p, re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+",
                                          re.escape(p)) + "$"))
              for p in DOCUMENT["paths"]]


def match_path(api_path):
    """'/users/12/presence' -> '/users/{user_id_or_email}/presence'.

    Literal templates win over parameterised ones (as in Zulip's URL
    table), so /users/me/presence is its own path. None if no match."""
    literal = [p for p, rx in _TEMPLATES if "{" not in p and rx.match(api_path)]
    if literal:
        return literal[0]
    for p, rx in _TEMPLATES:
        if rx.match(api_path):
            return p
    return None


def _response_schema(path, method, status):
    op = DOCUMENT["paths"].get(path, {}).get(method.lower())
    if not op:
        return None
    resp = op.get("responses", {}).get(str(status))
    if resp is None:
        return None
    if "$ref" in resp:
        resp = _resolve_pointer(DOCUMENT, resp["$ref"])
    content = resp.get("content", {}).get("application/json")
    if not content or "schema" not in content:
        return None
    return to_json_schema(content["schema"])


def schema_for(path, method, status, body=None):
    """The JSON Schema a response body must satisfy, and a label for it."""
    documented = _response_schema(path, method, status) if path else None
    if documented is not None:
        return documented, f"{method.upper()} {path} {status}"
    if 200 <= status < 300:
        raise AssertionError(
            f"{method.upper()} {path}: status {status} is not documented")
    if status == 405:
        return EXTENSIONS["MethodNotAllowedError"], "MethodNotAllowedError"
    code = body.get("code") if isinstance(body, dict) else None
    if code == "REQUEST_VARIABLE_MISSING":
        return component("MissingArgumentError"), "MissingArgumentError"
    if code == "RATE_LIMIT_HIT":
        return EXTENSIONS["RateLimitError"], "RateLimitError"
    return component("CodedError"), "CodedError"


def validate(instance, schema, label=""):
    """Raises AssertionError listing every violation."""
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            lines.append(f"  at {where}: {e.message[:400]}")
            for sub in (e.context or [])[:6]:
                sw = "/".join(str(p) for p in sub.absolute_path) or "(root)"
                lines.append(f"    - {sw}: {sub.message[:300]}")
        raise AssertionError(
            f"response does not match schema {label}:\n" + "\n".join(lines)
            + f"\nbody: {json.dumps(instance)[:1500]}")


def check_response(method, url, response):
    """Validates one HTTP answer from an /api/v1 URL (path plus query).

    Bodiless answers (HEAD, 204) must have no body; every other answer must
    be JSON and match the schema of its path, method and status."""
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path
    assert path.startswith("/api/v1/"), url
    api_path = path[len("/api/v1"):]
    if method.upper() == "HEAD" or response.status == 204:
        assert response.body == b"", (
            f"{method} {url}: {response.status} must have no body, got "
            f"{response.body[:200]!r}")
        return None
    ctype = response.header("Content-Type") or ""
    assert ctype.split(";")[0].strip().lower() == "application/json", (
        f"{method} {url}: Content-Type {ctype!r}, want application/json "
        f"({response.status} {response.body[:200]!r})")
    body = response.json()
    template = match_path(api_path)
    schema, label = schema_for(template, method, response.status, body)
    validate(body, schema, label)
    return body
