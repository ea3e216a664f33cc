"""Kyma voice API: domain code shared by every Lambda function (the shared layer)."""
