"""The audit trail: every read and change of patient data, append-only and hash-chained."""
