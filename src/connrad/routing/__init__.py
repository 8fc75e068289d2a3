"""Where a site's data may be sent: DICOM and DICOMweb destinations (C-MOVE, backups)."""
