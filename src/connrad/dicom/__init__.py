"""Pure DICOM helpers: parsing, person names, UIDs, the JSON model, pixels."""
