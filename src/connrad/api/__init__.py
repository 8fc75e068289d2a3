"""The JSON API under /api: sign-in, administration, and (later) the web app's endpoints."""
