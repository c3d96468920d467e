"""Valid-looking identities for the demo and the tests: resident ids, credit codes, cards.

Check digits come from python-stdnum (``cn.ric``, ``cn.uscc``, ``luhn``), so
what this module makes passes the same checks the ledger applies to real input.
"""

from __future__ import annotations

from datetime import date

from stdnum import luhn
from stdnum.cn import ric, uscc

REGION_CODE = "110105"  # 北京市朝阳区: valid for every birth year the demo uses


def resident_id(birth_date: date, sequence: int, male: bool, region: str = REGION_CODE) -> str:
    """GB 11643: region + birth date + 3-digit order (odd for men) + check digit."""
    order = (sequence * 2 + (1 if male else 0)) % 1000
    body = f"{region}{birth_date:%Y%m%d}{order:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects the check digit slot present


def credit_code(sequence: int) -> str:
    """GB 32100: registration authority 9, type 1, region, 9-character org code, check digit."""
    body = f"91{REGION_CODE}{sequence:08d}0"
    body = body[:17]
    return body + uscc.calc_check_digit(body)


def card_number(sequence: int, prefix: str = "621700") -> str:
    body = f"{prefix}{sequence:012d}"
    return body + luhn.calc_check_digit(body)
