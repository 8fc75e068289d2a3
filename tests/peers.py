"""Peers the tests need (PostgreSQL, Orthanc, DCMTK): skip when absent, fail under CI."""

from __future__ import annotations

import os

import pytest


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"required peer missing under CI: {reason}")
    pytest.skip(reason)
