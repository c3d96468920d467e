"""Member documents of ST-1: 个人账户明细 (account statement), 还款明细 (repayment statement)
and 缴存证明 (contribution certificate), as data (:mod:`.documents`), JSON
(:mod:`.render_json`) and PDF with embedded Chinese fonts (:mod:`.pdf`, ADR 0004).

Read models build the frozen dataclasses; the renderers never touch the database or
the clock, so the same document always renders to the same JSON and the same bytes.
"""

from ledger.reports.documents import (
    OFFSET_REASON_CODE,
    REPAYMENT_INSTALMENTS_MAX,
    STATEMENT_LINES_MAX,
    AccountStatement,
    AccountStatus,
    ContributionCertificate,
    DocumentError,
    EntryKind,
    RepaymentInstalment,
    RepaymentMethod,
    RepaymentStatement,
    StatementLine,
    mask_id_number,
)
from ledger.reports.pdf import (
    ReportSizeError,
    render_account_statement_pdf,
    render_contribution_certificate_pdf,
    render_repayment_statement_pdf,
)
from ledger.reports.render_json import (
    account_statement_to_json,
    contribution_certificate_to_json,
    repayment_statement_to_json,
)

__all__ = [
    "OFFSET_REASON_CODE",
    "REPAYMENT_INSTALMENTS_MAX",
    "STATEMENT_LINES_MAX",
    "AccountStatement",
    "AccountStatus",
    "ContributionCertificate",
    "DocumentError",
    "EntryKind",
    "RepaymentInstalment",
    "RepaymentMethod",
    "RepaymentStatement",
    "ReportSizeError",
    "StatementLine",
    "account_statement_to_json",
    "contribution_certificate_to_json",
    "mask_id_number",
    "render_account_statement_pdf",
    "render_contribution_certificate_pdf",
    "render_repayment_statement_pdf",
    "repayment_statement_to_json",
]
