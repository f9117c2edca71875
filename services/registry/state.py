"""What the registry process's request path reads: the shared API state, its settings, the
live stream's viewers, the audit verifier's lock and the dashboard's sign-in."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.registry.settings import RegistrySettings
from shared.state import ApiState

if TYPE_CHECKING:  # the web layer reads this state: importing it here would be a cycle
    from services.registry.web.dashboard.oauth import DashboardOAuth
    from services.registry.web.dashboard.session import Sessions
    from services.registry.web.stream import Viewers


@dataclass(eq=False)
class RegistryState(ApiState):
    """The registry's typed state; the lifespan sets the fields marked `init=False`."""

    settings: RegistrySettings = field(kw_only=True)
    audit_lock: asyncio.Lock = field(default_factory=asyncio.Lock, kw_only=True)
    viewers: Viewers = field(init=False)
    dashboard_sessions: Sessions = field(init=False)
    dashboard_oauth: DashboardOAuth = field(init=False)
