"""Plumbing every wing stands on: configuration, AWS clients, DynamoDB helpers, observability and the
INIT-phase helper.  It imports nothing above it."""
