"""Quality control: fast checks in the ingest pipeline, deep checks as jobs after storage.

Every check yields :class:`~connrad.qc.findings.Finding` values with a stable code; the
catalogue of codes and what each measures is docs/qc.md.
"""
