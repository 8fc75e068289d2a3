"""Imports every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from connrad.archive import models as archive_models
from connrad.audit import models as audit_models
from connrad.db.base import Base
from connrad.deid import models as deid_models
from connrad.identity import models as identity_models
from connrad.jobs import models as jobs_models
from connrad.orders import models as orders_models
from connrad.priors import models as priors_models
from connrad.qc import models as qc_models
from connrad.routing import models as routing_models

__all__ = [
    "Base",
    "archive_models",
    "audit_models",
    "deid_models",
    "identity_models",
    "jobs_models",
    "orders_models",
    "priors_models",
    "qc_models",
    "routing_models",
]
