"""Speech: the request (validation, price), the paid synthesis, the forms the audio is delivered in,
and the replay store for Idempotency-Keys."""
