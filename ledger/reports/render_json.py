"""JSON form of the member documents (ST-1): plain dicts ready for ``json.dumps``.

Money is a string with exactly two decimals (``"2067.79"``), never a number, so no
reader turns it into a float; dates and times are ISO 8601; rates and ratios are
percent strings (``"2.85"``, MNY-3); every coded value also carries its Chinese label
under ``<field>_zh``. Totals are computed here from the lines, as on the PDF.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from ledger.money import Money
from ledger.reports.documents import (
    AccountStatement,
    ContributionCertificate,
    RepaymentStatement,
)

def _plain(value: Any) -> Any:
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return [_fields(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _fields(document: Any) -> dict[str, Any]:
    """Every dataclass field in declaration order; an enum adds its Chinese label beside its code."""
    result: dict[str, Any] = {}
    for field in fields(document):
        value = getattr(document, field.name)
        if isinstance(value, Enum):
            result[field.name] = value.code
            result[f"{field.name}_zh"] = value.label_zh
        else:
            result[field.name] = _plain(value)
    return result


def account_statement_to_json(statement: AccountStatement) -> dict[str, Any]:
    """个人账户明细 as a dict; reversal lines keep ``is_reversal`` and get ``mark_zh`` 冲正."""
    result = {"document": "account_statement", "title_zh": statement.title_zh}
    result.update(_fields(statement))
    for line_json, line in zip(result["lines"], statement.lines, strict=True):
        line_json["mark_zh"] = "冲正" if line.is_reversal else ""
    result["line_count"] = len(statement.lines)
    result["total_debit"] = str(statement.total_debit)
    result["total_credit"] = str(statement.total_credit)
    return result


def repayment_statement_to_json(statement: RepaymentStatement) -> dict[str, Any]:
    """还款明细 as a dict, with ``totals`` per money column."""
    result = {"document": "repayment_statement", "title_zh": statement.title_zh}
    result.update(_fields(statement))
    result["instalment_count"] = len(statement.instalments)
    result["totals"] = {name: str(total) for name, total in statement.totals().items()}
    return result


def contribution_certificate_to_json(certificate: ContributionCertificate) -> dict[str, Any]:
    """缴存证明 as a dict holding every ST-1 field."""
    result = {"document": "contribution_certificate", "title_zh": certificate.title_zh}
    result.update(_fields(certificate))
    return result
