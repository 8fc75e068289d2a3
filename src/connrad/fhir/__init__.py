"""HL7 FHIR R4 API (this issue: AuditEvent; the clinical resources come with the HIS link)."""
