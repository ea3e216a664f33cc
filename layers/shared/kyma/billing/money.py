"""Money: integer micro-dollars everywhere; decimals only at the edge.

`$2.10` is `2_100_000`.  Nothing in the system does arithmetic on floats or
decimals; they appear only when a value leaves as JSON or as a header.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
# Below 2**53 a float holds every integer exactly, and the shortest repr of
# `micros / 1e6` is the decimal with at most 6 places we started from.
_MAX_EXACT_MICROS = 2**53
# The largest balance (and so the largest top-up) the service accepts: $1,000,000,000.  Far
# below 2**53 micro-dollars, so every amount the service can hold renders exactly in JSON.
MAX_BALANCE_MICROS = 10**15


def usd_to_micros(amount: str | int | Decimal) -> int:
    """Parse a USD amount ("50", "2.10", "0.000001") exactly; reject sub-micro, negatives and
    amounts over MAX_BALANCE_MICROS (a clear ValueError, never an overflow later)."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not a USD amount: {amount!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative USD amount: {amount!r}")
    if value > Decimal(MAX_BALANCE_MICROS) / MICROS_PER_USD:
        raise ValueError(f"USD amount over the maximum balance of {MAX_BALANCE_MICROS // MICROS_PER_USD:,}: {amount!r}")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"USD amount has more than 6 decimal places: {amount!r}")
    return int(micros)


def micros_to_json(micros: int) -> float | int:
    """A JSON number for a body: 2_100_000 → 2.1, 50_000_000 → 50.0, 2_600 → 0.0026.

    Exact for every amount the service accepts (< MAX_BALANCE_MICROS < 2**53).  It never raises:
    a response after a charge must not fail.  Beyond 2**53 (only by hand-editing a table) whole
    dollars stay exact as an integer and anything else is the nearest float."""
    if abs(micros) < _MAX_EXACT_MICROS:
        return micros / MICROS_PER_USD
    whole, frac = divmod(micros, MICROS_PER_USD)
    return whole if frac == 0 else micros / MICROS_PER_USD


def micros_to_header(micros: int) -> str:
    """A header value: at least 2 decimals, more only when needed ("2.10", "0.0026")."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def per_thousand_cost(units: int, micros_per_thousand: int) -> int:
    """Cost of `units` at a price per 1,000, rounded up to the whole micro-dollar."""
    if units < 0 or micros_per_thousand < 0:
        raise ValueError("units and price must be non-negative")
    return -(-units * micros_per_thousand // 1000)
