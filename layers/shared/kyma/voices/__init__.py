"""Voices: ids and states (records), the Voices table (store), activation and expiry (lifecycle),
the catalog, cloning, and the reference uploads a clone is made from."""
