"""Study-level deep checks: one patient per study, and the study agrees with its order.

Identity is compared through the keyed fingerprint taken at ingest from the identity as
received (before de-identification), so a study mixing two patients is caught even when the
cloud holds only pseudonyms. The order is found through the accession number's blind index
(the vault's study record under de-identification, the index in clear otherwise), so no
identifier is decrypted for the check.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, func, select

from connrad.archive.models import Instance, Series, Study
from connrad.deid import vault
from connrad.deid.models import IdentityRecord, IdentityTerm
from connrad.deid.vault import IndexKind
from connrad.orders.models import Order
from connrad.qc.findings import Finding, fail, warn

if TYPE_CHECKING:
    from connrad.services import Services

S, R, N = Study.__table__, Series.__table__, Instance.__table__
_orders = Order.__table__
_records, _terms = IdentityRecord.__table__, IdentityTerm.__table__

# Body regions by the words a BodyPartExamined or a procedure name uses for them.
REGIONS: dict[str, frozenset[str]] = {
    "head": frozenset({"HEAD", "BRAIN", "SKULL", "CRANIUM", "헤드", "두부", "뇌"}),
    "neck": frozenset({"NECK", "CSPINE", "C-SPINE", "경부"}),
    "chest": frozenset({"CHEST", "THORAX", "LUNG", "흉부"}),
    "abdomen": frozenset({"ABDOMEN", "ABD", "LIVER", "복부"}),
    "pelvis": frozenset({"PELVIS", "HIP", "골반"}),
    "spine": frozenset({"SPINE", "LSPINE", "TSPINE", "L-SPINE", "T-SPINE", "척추"}),
    "breast": frozenset({"BREAST", "MAMMO", "유방"}),
    "extremity": frozenset(
        {"HAND", "FOOT", "KNEE", "ANKLE", "WRIST", "ELBOW", "SHOULDER", "ARM", "LEG"}
    ),
}
_WORDS = re.compile(r"[A-Z\-]+|[가-힣]+")


def regions_in(text: str) -> set[str]:
    words = set(_WORDS.findall(text.upper()))
    return {region for region, names in REGIONS.items() if words & names}


def study_checks(services: Services, conn: Connection, study_pk: int) -> list[Finding]:
    return [*_identity(conn, study_pk), *_order(services, conn, study_pk)]


def _identity(conn: Connection, study_pk: int) -> list[Finding]:
    count = conn.execute(
        select(func.count(func.distinct(N.c.identity_fp))).where(
            N.c.study_pk == study_pk, N.c.identity_fp.is_not(None)
        )
    ).scalar_one()
    if count <= 1:
        return []
    return [
        fail(
            "study.identity-mismatch",
            f"the study's images carry {count} different patient identities",
            "PatientID",
            identities=int(count),
        )
    ]


def _order_indexes(services: Services, conn: Connection, study_pk: int) -> list[str]:
    study = conn.execute(
        select(S.c.site_id, S.c.study_uid, S.c.accession_number).where(S.c.id == study_pk)
    ).one()
    sealed = conn.execute(
        select(_terms.c.term)
        .join(_records, _records.c.id == _terms.c.record_id)
        .where(
            and_(
                _records.c.site_id == study.site_id,
                _records.c.kind == "study",
                _records.c.pseudonym == study.study_uid,
                _terms.c.kind == IndexKind.ACCESSION.value,
            )
        )
    ).scalars()
    indexes = list(sealed)
    if indexes or not study.accession_number.strip():
        return indexes
    keys = services.site_keys.all(int(study.site_id))
    return [
        vault.blind_index(key, IndexKind.ACCESSION, study.accession_number) for key in keys.values()
    ]


def _order(services: Services, conn: Connection, study_pk: int) -> list[Finding]:
    indexes = _order_indexes(services, conn, study_pk)
    if not indexes:
        return []
    site_id = conn.execute(select(S.c.site_id).where(S.c.id == study_pk)).scalar_one()
    order = conn.execute(
        select(_orders.c.modality, _orders.c.procedure_meaning, _orders.c.procedure_code).where(
            _orders.c.site_id == site_id, _orders.c.accession_index.in_(indexes)
        )
    ).first()
    if order is None:
        return []
    series_rows = conn.execute(
        select(R.c.modality, R.c.body_part_examined).where(R.c.study_pk == study_pk)
    ).all()
    found: list[Finding] = []
    # Secondary objects (SR, KO, PR, SEG) may accompany any exam.
    imaging = {
        r.modality for r in series_rows if r.modality not in {"SR", "KO", "PR", "SEG", "OT", ""}
    }
    if order.modality and imaging and order.modality not in imaging:
        found.append(
            fail(
                "order.modality-mismatch",
                f"the order is for {order.modality}, the study holds " + ", ".join(sorted(imaging)),
                "Modality",
                ordered=order.modality,
                received=sorted(imaging),
            )
        )
    ordered_regions = regions_in(f"{order.procedure_meaning} {order.procedure_code}")
    received_regions: set[str] = set()
    for row in series_rows:
        received_regions |= regions_in(row.body_part_examined or "")
    if ordered_regions and received_regions and not ordered_regions & received_regions:
        found.append(
            warn(
                "order.body-part-mismatch",
                "the body part examined differs from the ordered procedure's",
                "BodyPartExamined",
                ordered=sorted(ordered_regions),
                received=sorted(received_regions),
            )
        )
    return found
