"""Money: integer micro-dollars, the ledger's transactions (reserve, settle, release, top-up, refund),
the paid-call protocol, the books (reads and the audit), usage, Idempotency-Keys and the reconciler.
It knows no voice, account or provider: callers hand it their own conditions (import-linter)."""
