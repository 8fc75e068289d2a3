"""Sites (tenants), devices and, later, users, tokens and permissions."""
