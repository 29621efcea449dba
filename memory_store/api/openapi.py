"""The OpenAPI document as a reader and an SDK generator want it: operation ids that read as
method names (`write_memory`, not `write_memory_v1_users__user_id__memories_post`), a
written summary per operation, the catalogue's purposes and categories as enums, and an
example for every request, every answer and every problem type a route may answer.

The routes stay as they are: this only edits the document FastAPI builds from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.routing import APIRoute

from memory_store.errors import Problem

# A route's operation id is its function's name, except where that name alone says too
# little in a generated client (`verify` of what?).
RENAMED = {
    "verify": "verify_audit_trail",
    "checkpoints": "list_audit_checkpoints",
    "proof": "get_inclusion_proof",
    "public_key": "get_audit_public_key",
    "export": "export_audit_trail",
    "list_events": "list_audit_events",
    "export_me": "export_my_data",
    "my_memory_history": "get_my_memory_history",
    "access_log": "get_my_access_log",
    "healthz": "check_health",
    "readyz": "check_readiness",
}

SUMMARIES = {
    "check_health": "Is the process up?",
    "check_readiness": "Can it serve: databases and keys reachable?",
    "write_memory": "Remember something about a user",
    "list_memories": "List a user's memories a purpose may use",
    "get_memory": "Read one memory",
    "forget_memory": "Forget one memory on the user's behalf",
    "get_context": "The memories most relevant to a question, within a budget",
    "list_my_memories": "List or search your memories",
    "delete_my_category": "Forget every memory of one category",
    "get_my_memory": "Read one of your memories",
    "patch_my_memory": "Correct one of your memories",
    "delete_my_memory": "Forget one of your memories",
    "get_my_memory_history": "The earlier versions of one of your memories",
    "export_my_data": "Everything held about you, as one document",
    "whoami": "Who your token belongs to",
    "forget_me": "Forget everything about you",
    "get_my_access_log": "Who read your memories, when and why",
    "get_consents": "What the assistant may use, per purpose and category",
    "put_consent": "Grant or withdraw one purpose for one category",
    "get_consent_history": "Every change of your consent",
    "get_settings": "Your settings (memory on or paused)",
    "patch_settings": "Pause or resume memory",
    "list_audit_events": "Audit records, newest first",
    "verify_audit_trail": "Verify the audit trail's chain, signatures and anchors",
    "list_audit_checkpoints": "The signed checkpoints the database holds",
    "get_inclusion_proof": "Prove one record is in a signed tree",
    "get_audit_public_key": "The key that verifies checkpoints (PEM)",
    "export_audit_trail": "The whole trail as JSON Lines",
    "erasure_status": "Whether an erasure is final",
    "put_item": "Store a JSON value under a namespace and key (an upsert)",
    "get_item": "Read the item of one namespace and key",
    "forget_item": "Forget the item of one namespace and key",
    "search_items": "Search a user's items by namespace, filter and query",
    "list_namespaces": "List the namespaces of a user's items",
}

DESCRIPTIONS = {
    "get_settings": "`memory_enabled`: whether the assistant may read and write your "
    "memories at all (see PATCH to pause it).",
}

# Values that read as real ones in the examples, by field name.
_FIELD_EXAMPLES: dict[str, Any] = {
    "content": "Prefers a window seat on long flights",
    "user_id": "alice",
    "id": "mem_3f9c2a7b41d84e0f",
    "memory_id": "mem_3f9c2a7b41d84e0f",
    "source": "chat 2026-11-30",
    "q": "flight seat",
    "request_id": "req_5b1d0c9e8a7f6e2d",
    "next_cursor": None,
    "token_id": "tok_8c1e4b2a9d0f7e36",
    "name": "alice",
    "version": 1,
    "expires_at": "2027-06-01T00:00:00Z",
}


def operation_id(route: APIRoute) -> str:
    """FastAPI's generate_unique_id_function."""
    return RENAMED.get(route.name, route.name)


def problem_types() -> list[type[Problem]]:
    """Every problem type the service answers with, one class per type."""
    found: dict[str, type[Problem]] = {}
    pending = list(Problem.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.type_slug, cls)
        pending.extend(cls.__subclasses__())
    return sorted(found.values(), key=lambda cls: cls.type_slug)


def problem_example(cls: type[Problem]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": f"/problems/{cls.type_slug}",
        "title": cls.title,
        "status": cls.status,
        "detail": cls.title,
        "request_id": _FIELD_EXAMPLES["request_id"],
    }
    if cls.type_slug == "rate-limited":
        document["retry_after"] = 12
    return document


def improve(document: dict[str, Any], purposes: Sequence[str], categories: Sequence[str]) -> None:
    """Edit the generated document in place: summaries, enums, examples."""
    components = document.get("components", {}).get("schemas", {})
    enums = {"purpose": sorted(purposes), "category": sorted(categories)}
    fields = {**_FIELD_EXAMPLES, "purpose": "personalization"}
    fields["category"] = "preferences" if "preferences" in categories else sorted(categories)[0]
    # Enums where a client chooses from the catalogue: the bodies it sends, and the parameters
    # of the assistant's and the user's routes. Not what the service answers (an audit event's
    # purpose may be the service's own, such as retention), nor the audit filters.
    for name in _request_schemas(document):
        for field, prop in components.get(name, {}).get("properties", {}).items():
            if field in enums:
                _add_enum(prop, enums[field])
    by_status: dict[int, list[type[Problem]]] = {}
    for cls in problem_types():
        by_status.setdefault(cls.status, []).append(cls)
    for path, operations in document.get("paths", {}).items():
        chosen = enums if path.startswith(("/v1/users/", "/v1/me")) else {}
        for operation in operations.values():
            _describe(operation)
            _parameters(operation, chosen, fields)
            _examples(operation, components, fields, by_status)


def _request_schemas(document: dict[str, Any]) -> set[str]:
    names = set()
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if ref:
                    names.add(ref.rsplit("/", 1)[-1])
    return names


def _describe(operation: dict[str, Any]) -> None:
    ident = operation.get("operationId", "")
    operation["summary"] = SUMMARIES.get(ident, operation.get("summary", ident))
    if ident in DESCRIPTIONS:
        operation["description"] = DESCRIPTIONS[ident]


def _parameters(
    operation: dict[str, Any], enums: dict[str, list[str]], fields: dict[str, Any]
) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] in enums:
            _add_enum(parameter.get("schema", {}), enums[parameter["name"]])
        if parameter["name"] in fields and "example" not in parameter:
            parameter["example"] = fields[parameter["name"]]


def _examples(
    operation: dict[str, Any],
    components: dict[str, Any],
    fields: dict[str, Any],
    by_status: dict[int, list[type[Problem]]],
) -> None:
    for media in operation.get("requestBody", {}).get("content", {}).values():
        media.setdefault("example", _example(media.get("schema", {}), components, fields))
    for code, response in operation.get("responses", {}).items():
        for kind, media in response.get("content", {}).items():
            if kind == "application/problem+json":
                media["examples"] = {
                    cls.type_slug: {"summary": cls.title, "value": problem_example(cls)}
                    for cls in by_status.get(int(code), [])
                }
            elif "example" not in media:
                media["example"] = _example(media.get("schema", {}), components, fields)


def _add_enum(schema: dict[str, Any], values: list[str]) -> None:
    if schema.get("type") == "string":
        schema["enum"] = values
    for member in schema.get("anyOf", []):
        _add_enum(member, values)


def _example(
    schema: dict[str, Any], components: dict[str, Any], fields: dict[str, Any], depth: int = 0
) -> Any:
    """A plausible value for `schema`: the field-name hints first, then by type."""
    if depth > 8:
        return None
    if "$ref" in schema:
        target = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return _example(target, components, fields, depth + 1)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combined in ("anyOf", "oneOf", "allOf"):
        members = [m for m in schema.get(combined, []) if m.get("type") != "null"]
        if members:
            return _example(members[0], components, fields, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: fields[name] if name in fields else _example(prop, components, fields, depth + 1)
            for name, prop in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example(schema.get("items", {}), components, fields, depth + 1)]
    return _scalar(schema)


def _scalar(schema: dict[str, Any]) -> Any:
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        if fmt == "date-time":
            return "2026-12-01T09:30:00Z"
        return "string"
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return None
