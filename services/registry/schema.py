"""Every table of the shared database in one MetaData, for Alembic and the model check."""

from __future__ import annotations

from services.issuer import models as _issuer_models  # noqa: F401 - registers tables
from services.registry import models as _registry_models  # noqa: F401 - registers tables
from shared.db import Base

metadata = Base.metadata
