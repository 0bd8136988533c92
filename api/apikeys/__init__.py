"""API keys of the other city systems (X-API-Key): made and revoked by admins, looked up on each call."""
