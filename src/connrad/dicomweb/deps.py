"""Request dependencies shared by the DICOMweb routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from connrad.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def dicomweb_base(request: Request) -> str:
    """Absolute URL of the DICOMweb root, for RetrieveURL and BulkDataURI."""
    settings = request.app.state.settings
    base = settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + "/dicomweb"


ServicesDep = Annotated[Services, Depends(get_services)]
BaseDep = Annotated[str, Depends(dicomweb_base)]
