"""What the issuer's request path reads: its settings, the authlib server, the sign-in and
token throttles, and the key ring its signing keys are sealed with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.issuer.settings import IssuerSettings
from shared.state import ServiceState

if TYPE_CHECKING:  # these modules read this state: importing them here would be a cycle
    from services.issuer.server import IssuerServer
    from services.issuer.service import TokenLimits
    from services.issuer.signin import SignIn
    from shared.keywrap import KeyRing


@dataclass(eq=False)
class IssuerState(ServiceState):
    """The issuer's typed state; the lifespan reads the key ring and sets the sessions."""

    settings: IssuerSettings = field(kw_only=True)
    server: IssuerServer = field(kw_only=True)
    sign_in: SignIn = field(kw_only=True)
    token_limits: TokenLimits = field(kw_only=True)
    key_ring: KeyRing = field(init=False)
