"""Every table of the shared database in one MetaData, for Alembic and the model check."""

from __future__ import annotations

from services.issuer import models as _issuer_models  # noqa: F401 - registers tables
from services.registry.approvals import models as _approvals_models  # noqa: F401
from services.registry.audit import models as _audit_models  # noqa: F401 - registers tables
from services.registry.cases import models as _cases_models  # noqa: F401 - registers tables
from services.registry.deliveries import models as _deliveries_models  # noqa: F401
from services.registry.evidence import models as _evidence_models  # noqa: F401
from services.registry.reference import models as _reference_models  # noqa: F401
from services.registry.releases import models as _releases_models  # noqa: F401
from services.registry.requests import models as _requests_models  # noqa: F401
from services.registry.responses import models as _responses_models  # noqa: F401
from services.registry.store import models as _store_models  # noqa: F401 - registers tables
from services.registry.webhooks import models as _webhooks_models  # noqa: F401
from shared.db import Base

metadata = Base.metadata
