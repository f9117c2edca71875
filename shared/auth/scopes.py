"""The OAuth scopes caseshare APIs understand, named once so routes and the issuer agree."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    """Scopes carried in the access token's space-separated `scope` claim."""

    CASES_WRITE = "cases:write"
    CASES_READ = "cases:read"
    RESPONSES_WRITE = "responses:write"
    INBOX_READ = "inbox:read"
    FANOUT_READ = "fanout:read"
    REGISTRY_ADMIN = "registry:admin"


# Shown in the OpenAPI security scheme so integrators see what each scope grants.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.CASES_WRITE: "Register and update your own jurisdiction's cases",
    Scope.CASES_READ: "Read cases you are entitled to see",
    Scope.RESPONSES_WRITE: "Submit cooperation responses as a platform",
    Scope.INBOX_READ: "Read and acknowledge your jurisdiction's inbox",
    Scope.FANOUT_READ: "Watch fan-out metadata as a coordinator",
    Scope.REGISTRY_ADMIN: "Administer reference data in the registry",
}
