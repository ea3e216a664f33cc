"""Webhooks: events pushed to a customer's URL, signed per Standard Webhooks (reference/webhooks.md)."""
