"""The published event contract: JSON Schemas, the AsyncAPI document, and a strict validator.

Everything here is derived from `shared.events`, so the contract integrators read is the one
our producers are tested against.
"""

from __future__ import annotations

from shared.contracts.asyncapi import asyncapi_document
from shared.contracts.routes import asyncapi_router
from shared.contracts.schemas import ROUTING, event_schema, event_schemas, schema_id
from shared.contracts.validate import ContractViolation, validate_dead_letter, validate_record

__all__ = [
    "ROUTING",
    "ContractViolation",
    "asyncapi_document",
    "asyncapi_router",
    "event_schema",
    "event_schemas",
    "schema_id",
    "validate_dead_letter",
    "validate_record",
]
