"""Accounts: the account rows, API keys (stored hashed) and per-account rate limits."""
