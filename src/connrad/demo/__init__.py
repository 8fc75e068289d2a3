"""Synthetic DICOM studies (CT, CR, US) for demo data, benchmarks and tests."""
