"""Decimal helpers: the one rounding rule (half-up, 2 places) and safe conversion of TOML/CSV numbers."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


def round2(value: Decimal) -> Decimal:
    """The contract's rounding: half-up to 2 decimals."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round_to(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def to_decimal(value: object) -> Decimal | None:
    """A TOML number (int, float) or numeric string as a Decimal; None when it is not a finite number.

    Floats go through str() so 0.1 in TOML becomes Decimal("0.1"), not its binary expansion."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            return None
    elif isinstance(value, Decimal):
        result = value
    else:
        return None
    return result if result.is_finite() else None


def format2(value: Decimal) -> str:
    """A Decimal as a string with exactly two decimals, the contract's JSON number format."""
    return str(round2(value))


def apportion(shares: list[Decimal], units: int) -> list[int]:
    """Split `units` whole units in proportion to `shares` so they add up exactly (largest remainder).

    Each share gets the floor of its quota; the units left over go to the largest fractional parts,
    the earlier share first on a tie, so the result depends only on the order the caller chose."""
    total = sum(shares, Decimal(0))
    if units < 0:
        raise ValueError("units must not be negative")
    if not shares:
        return []
    if total <= 0 or any(share < 0 for share in shares):
        raise ValueError("shares must be non-negative and add up to more than zero")
    quotas = [share * units / total for share in shares]
    floors = [int(quota) for quota in quotas]  # int() truncates; quotas are never negative here
    left = units - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors
