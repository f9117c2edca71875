"""OAuth 2.0 resource-server support shared by every caseshare API.

Import from here: `TokenValidator` validates RFC 9068 access tokens, `Principal` is the caller,
`Scope` names the scopes, and the `deps` aliases plug both into FastAPI routes.
"""

from shared.auth.deps import (
    authenticate,
    document_token_url,
    require,
)
from shared.auth.principal import Principal
from shared.auth.scopes import Scope
from shared.auth.validation import TokenValidator

__all__ = [
    "Principal",
    "Scope",
    "TokenValidator",
    "authenticate",
    "document_token_url",
    "require",
]
