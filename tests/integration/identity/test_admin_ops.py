"""Admin operations keep the installation manageable."""

from __future__ import annotations

import pytest

from connrad.db.transaction import write_transaction
from connrad.identity import admin
from connrad.identity.caller import Role
from connrad.services import Services


def test_the_last_administrator_stays(services: Services) -> None:
    with write_transaction(services.engine) as conn:
        assert admin.ensure_first_admin(conn) is not None
        assert admin.ensure_first_admin(conn) is None  # only once
        first = admin.user_by_name(conn, admin.FIRST_ADMIN)["id"]
    for change in ({"role": Role.RESEARCHER}, {"disabled": True}):
        with pytest.raises(admin.AdminError) as refused, write_transaction(services.engine) as conn:
            admin.update_user(conn, first, **change)  # type: ignore[arg-type]
        assert refused.value.status == 409
    with write_transaction(services.engine) as conn:
        second, _ = admin.create_user(conn, "second-admin", Role.ADMIN, None)
        admin.update_user(conn, first, role=Role.RESEARCHER)  # another administrator remains
        with pytest.raises(admin.AdminError):
            admin.update_user(conn, second["id"], disabled=True)
