"""Orthanc as the hospital PACS for the routing tests."""

from tests.orthanc import orthanc  # noqa: F401
