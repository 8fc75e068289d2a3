"""DICOM associations are identified by calling AE title and, when configured, host."""

from __future__ import annotations

from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.authenticate import dicom_caller
from connrad.identity.policy import Action, site_scope
from connrad.services import Services


def test_registered_ae_titles_identify_their_device(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        site = admin.create_site(conn, "island", "Island clinic")["id"]
        anywhere = admin.create_device(conn, site, "portable-ct", "dicom", ae_title="PORTCT")
        pinned = admin.create_device(
            conn, site, "us-cart", "dicom", ae_title="USCART", hosts=["10.1.2.3"]
        )
        admin.create_device(conn, site, "uploader", "api")
    with services.engine.connect() as conn:
        caller = dicom_caller(conn, "PORTCT  ", "192.0.2.7")
        assert caller is not None
        assert (caller.device_id, caller.site_id) == (anywhere["id"], site)
        assert site_scope(caller, Action.STORE) == {site}
        assert site_scope(caller, Action.SEARCH) == {site}  # query/retrieve its own site
        assert dicom_caller(conn, "USCART", "10.1.2.3") is not None
        assert dicom_caller(conn, "USCART", "10.1.2.4") is None  # host not allowed
        assert dicom_caller(conn, "UNKNOWN", "10.1.2.3") is None
        assert dicom_caller(conn, "portct", "192.0.2.7") is None  # AE titles are exact
    with write_transaction(services.engine) as conn:
        admin.update_device(conn, pinned["id"], disabled=True)
        admin.update_site(conn, site, disabled=True)
    with services.engine.connect() as conn:
        assert dicom_caller(conn, "USCART", "10.1.2.3") is None
        assert dicom_caller(conn, "PORTCT", "192.0.2.7") is None  # its site is disabled
