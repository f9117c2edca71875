"""A structural check of the AsyncAPI document, since no AsyncAPI validator is installed.

It catches what would break an integrator's tooling: a document that is not plain JSON, a
`$ref` that points nowhere, an operation that names a message its channel does not carry, a
channel parameter that is not declared, or a payload that is not a valid JSON Schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

ACTIONS = {"send", "receive"}
_PARAM = re.compile(r"\{([^}]+)\}")


def check_asyncapi(doc: dict[str, Any]) -> list[str]:
    """Every problem found; an empty list means the document passed."""
    try:
        json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return [f"not plain JSON: {exc}"]
    problems = [f"unresolved $ref {ref} at {at}" for at, ref in _refs(doc) if not _ok(doc, ref)]
    if problems:
        return problems
    if doc.get("asyncapi") != "3.0.0":
        problems.append("asyncapi must be 3.0.0")
    for field in ("title", "version"):
        if not doc.get("info", {}).get(field):
            problems.append(f"info.{field} is missing")
    for name, server in doc.get("servers", {}).items():
        if not server.get("host") or not server.get("protocol"):
            problems.append(f"server {name} needs host and protocol")
    for name, channel in doc.get("channels", {}).items():
        problems += _check_channel(doc, name, channel)
    for name, op in doc.get("operations", {}).items():
        problems += _check_operation(name, op)
    return problems


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s (JSON Pointers into `doc`) until a real object."""
    for _ in range(32):  # a cycle of references is an error, not a hang
        if not (isinstance(node, dict) and "$ref" in node):
            return node
        node = _pointer(doc, node["$ref"])
    raise ValueError("$ref chain too long (a cycle?)")


def _check_channel(doc: dict[str, Any], name: str, channel: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator, SchemaError  # type: ignore[import-untyped]

    problems = []
    address = channel.get("address", "")
    if not address:
        problems.append(f"channel {name} has no address")
    if set(_PARAM.findall(address)) != set(channel.get("parameters", {})):
        problems.append(f"channel {name}: address parameters and declared parameters differ")
    if not channel.get("messages"):
        problems.append(f"channel {name} carries no message")
    for msg_name, ref in channel.get("messages", {}).items():
        message = resolve(doc, ref)
        for part in ("payload", "headers"):
            if part not in message:
                if part == "payload":
                    problems.append(f"message {msg_name} has no payload")
                continue
            schema = _inline(doc, message[part])
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                problems.append(f"message {msg_name} {part}: {exc.message}")
    return problems


def _check_operation(name: str, op: dict[str, Any]) -> list[str]:
    problems = []
    if op.get("action") not in ACTIONS:
        problems.append(f"operation {name}: action must be send or receive")
    channel_ref = op.get("channel", {}).get("$ref", "")
    if not channel_ref.startswith("#/channels/"):
        problems.append(f"operation {name} must reference a channel")
    for ref in op.get("messages", []):
        if not ref.get("$ref", "").startswith(f"{channel_ref}/messages/"):
            problems.append(f"operation {name}: message {ref} is not one of its channel's")
    return problems


def _inline(doc: dict[str, Any], node: Any) -> Any:
    """A schema with every `$ref` replaced by its target, for a validator that knows no doc."""
    node = resolve(doc, node)
    if isinstance(node, dict):
        return {k: _inline(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(doc, v) for v in node]
    return node


def _refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _ok(doc: dict[str, Any], ref: str) -> bool:
    try:
        _pointer(doc, ref)
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"{ref} is not a reference inside the document")
    node: Any = doc
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node
