"""Request dependencies shared by the DICOMweb routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from connrad.identity.caller import Caller, local_caller
from connrad.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_caller(request: Request) -> Caller:
    return local_caller(get_services(request).local_site_id)


def dicomweb_base(request: Request) -> str:
    """Absolute URL of the DICOMweb root, for RetrieveURL and BulkDataURI."""
    settings = request.app.state.settings
    base = settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + "/dicomweb"


ServicesDep = Annotated[Services, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(get_caller)]
BaseDep = Annotated[str, Depends(dicomweb_base)]
