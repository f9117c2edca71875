"""What intake's request path reads: the shared API state, its settings, context and clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.intake.settings import IntakeSettings
from services.registry.context import Context
from services.registry.requests.rules import Clock, system_clock
from shared.state import ApiState


@dataclass(eq=False)
class IntakeState(ApiState):
    """Intake's typed state; tests swap `clock` to drive legal deadlines."""

    settings: IntakeSettings = field(kw_only=True)
    clock: Clock = field(default=system_clock, kw_only=True)
    context: Context = field(init=False)
