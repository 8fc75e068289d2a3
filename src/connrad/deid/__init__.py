"""De-identification: profiles, the engine and the identity vault."""
