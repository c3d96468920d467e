"""Interest on fund accounts (结息, INT-1 / INT-2): balance-day products (积数).

Pure functions over a list of movements ``(value_date, signed amount, kind)``.
The product is computed by segments between flow dates, never day by day.
An interest credit (value-dated 30 June) enters the product from 1 July.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Sequence

from ledger.money import Money, round_fen

DAYS_PER_YEAR_BASIS = Decimal(360)
HUNDRED = Decimal(100)
ROUNDED_DAILY_PLACES = Decimal("0.00000001")
INTEREST_KIND = "interest"


@dataclass(frozen=True)
class InterestResult:
    start: date
    end: date
    product: Decimal  # Σ balance × days (积数), for one rate; summed over rates otherwise
    interest: Money
    method: str
    rates: tuple[tuple[date, Decimal], ...]
    year_start: date | None = None  # the interest year this part belongs to, when it starts mid-year

    @property
    def year_key(self) -> str:
        """The interest year's key on the account: the calendar year it starts in ("2024" = 2024-07-01 on)."""
        return str((self.year_start or self.start).year)


def interest_year(day: date, start_month: int = 7) -> tuple[date, date]:
    """The interest year (1 July - 30 June by default) that contains ``day``."""
    year = day.year if day.month >= start_month else day.year - 1
    start = date(year, start_month, 1)
    end = date(year + 1, start_month, 1) - timedelta(days=1)
    return start, end


def _effective_date(value_date: date, kind: str) -> date:
    return value_date + timedelta(days=1) if kind == INTEREST_KIND else value_date


def _rate_segments(start: date, end: date, rates: Sequence[tuple[date, Decimal]]) -> list[tuple[date, date, Decimal]]:
    """Split [start, end] at each rate change (INT-1)."""
    ordered = sorted(rates)
    segments = []
    for index, (effective_from, rate) in enumerate(ordered):
        next_from = ordered[index + 1][0] if index + 1 < len(ordered) else None
        seg_start = max(start, effective_from)
        seg_end = end if next_from is None else min(end, next_from - timedelta(days=1))
        if seg_start <= seg_end:
            segments.append((seg_start, seg_end, rate))
    if not segments or segments[0][0] != start:
        raise ValueError(f"no interest rate in force on {start}")
    return segments


def _segment_product(movements: Iterable[tuple[date, Decimal, str]], start: date, end: date) -> Decimal:
    """Σ over days in [start, end] of the end-of-day balance."""
    opening = Decimal(0)
    flows: dict[date, Decimal] = {}
    for value_date, amount, kind in movements:
        effective = _effective_date(value_date, kind)
        if effective < start:
            opening += amount
        elif effective <= end:
            flows[effective] = flows.get(effective, Decimal(0)) + amount
    product = Decimal(0)
    balance = opening
    cursor = start
    for day in sorted(flows):
        product += balance * (day - cursor).days
        balance += flows[day]
        cursor = day
    product += balance * ((end - cursor).days + 1)
    return product


def daily_product_interest(movements: Sequence[tuple[date, Decimal, str]], start: date, end: date,
                           rates: Sequence[tuple[date, Decimal]], rounded_daily_rate: bool = False) -> InterestResult:
    total = Decimal(0)
    product_total = Decimal(0)
    for seg_start, seg_end, rate in _rate_segments(start, end, rates):
        product = _segment_product(movements, seg_start, seg_end)
        product_total += product
        daily = rate / HUNDRED / DAYS_PER_YEAR_BASIS
        if rounded_daily_rate:
            daily = daily.quantize(ROUNDED_DAILY_PLACES, rounding=ROUND_HALF_UP)
        total += product * daily
    return InterestResult(start, end, product_total, Money(round_fen(total)), "daily_product", tuple(rates))


def carried_plus_flows_interest(movements: Sequence[tuple[date, Decimal, str]], start: date, end: date,
                                rates: Sequence[tuple[date, Decimal]]) -> InterestResult:
    """carried-forward × rate (× days/360 for a part year) + Σ flow × days to ``end`` × rate / 360."""
    segments = _rate_segments(start, end, rates)
    full_year = interest_year(start)[1] == end and interest_year(start)[0] == start
    total = Decimal(0)
    product_total = Decimal(0)
    carried = sum((a for d, a, k in movements if _effective_date(d, k) < start), Decimal(0))
    for seg_start, seg_end, rate in segments:
        days = (seg_end - seg_start).days + 1
        if full_year and len(segments) == 1:
            total += carried * rate / HUNDRED
        else:
            total += carried * days * rate / HUNDRED / DAYS_PER_YEAR_BASIS
        product_total += carried * days
    for value_date, amount, kind in movements:
        effective = _effective_date(value_date, kind)
        if start <= effective <= end:
            for seg_start, seg_end, rate in segments:
                first = max(seg_start, effective)
                if first <= seg_end:
                    days = (seg_end - first).days + 1
                    total += amount * days * rate / HUNDRED / DAYS_PER_YEAR_BASIS
                    product_total += amount * days
    return InterestResult(start, end, product_total, Money(round_fen(total)), "carried_plus_flows", tuple(rates))


def compute_interest(method: str, movements: Sequence[tuple[date, Decimal, str]], start: date, end: date,
                     rates: Sequence[tuple[date, Decimal]], daily_rate: str = "exact") -> InterestResult:
    if method == "daily_product":
        return daily_product_interest(movements, start, end, rates, rounded_daily_rate=daily_rate == "rounded")
    if method == "carried_plus_flows":
        return carried_plus_flows_interest(movements, start, end, rates)
    raise ValueError(f"unknown interest method {method}")
