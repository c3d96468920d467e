"""Member documents (ST-1, OFF-5, COR-1): data invariants, JSON shape, and PDFs whose Chinese renders and extracts.

The samples use the worked loan of the SPEC (500,000.00 over 360 months at 2.85 %,
instalment 2,067.79 = 880.29 principal + 1,187.50 interest). PDFs are checked the way a
person and a machine read them: pymupdf extracts the text, and renders page 1 to pixels.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pymupdf
import pytest

from ledger.money import ZERO, Money
from ledger.reports import (
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
    account_statement_to_json,
    contribution_certificate_to_json,
    mask_id_number,
    render_account_statement_pdf,
    render_contribution_certificate_pdf,
    render_repayment_statement_pdf,
    repayment_statement_to_json,
)

CENTRE = "成都住房公积金管理中心"
LOAN_NUMBER = "GJJ2025000123"
ORIGINAL = "S202502120003"  # the back-payment serial that the reversal names
MONEY_TEXT = re.compile(r"^-?\d+\.\d{2}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NON_WHITE_SHARE_MIN = 0.01
ST1_CERTIFICATE_FIELDS = (
    "member_name", "id_number", "account_number", "employer_name", "opened_on", "account_state",
    "contribution_base", "employer_ratio", "member_ratio", "monthly_amount", "paid_up_to",
    "months_paid_total", "months_paid_consecutive", "six_months_before_continuous", "balance",
    "has_outstanding_fund_loan", "fund_loans_used", "has_fraud_record", "issued_on",
    "certificate_number", "verification_code",
)  # fmt: skip


def yuan(text: str) -> Money:
    return Money(text)


def line(on: date, kind: EntryKind, debit: str, credit: str, balance: str, **extra: Any) -> StatementLine:
    recorded_at = extra.pop("recorded_at", datetime(on.year, on.month, on.day, 9, 30))
    return StatementLine(on, recorded_at, kind, yuan(debit), yuan(credit), yuan(balance), **extra)


def sample_statement() -> AccountStatement:
    """Remittances, a back-payment reversed two days later (COR-1) and an offset deduction (OFF-5)."""
    lines = (
        line(date(2025, 1, 10), EntryKind.REMITTANCE, "0", "1920.00", "11920.00", reason_code="01", serial="S1001"),
        line(date(2025, 2, 10), EntryKind.REMITTANCE, "0", "1920.00", "13840.00", reason_code="01", serial="S1002"),
        line(date(2025, 2, 12), EntryKind.BACK_PAYMENT, "0", "500.00", "14340.00", reason_code="02", serial=ORIGINAL),
        line(
            date(2025, 2, 12), EntryKind.BACK_PAYMENT, "500.00", "0", "13840.00", reason_code="02",
            is_reversal=True, serial="S202502140004", reverses_serial=ORIGINAL,
            recorded_at=datetime(2025, 2, 14, 16, 0),
        ),
        line(date(2025, 2, 15), EntryKind.OFFSET, "2067.79", "0", "11772.21", reason_code="06", reference=LOAN_NUMBER),
        line(date(2025, 3, 10), EntryKind.REMITTANCE, "0", "1920.00", "13692.21", reason_code="01"),
    )  # fmt: skip
    return AccountStatement(
        centre_name=CENTRE,
        member_name="张伟",
        id_number_masked=mask_id_number("110101199003071234"),
        account_number="100200300400",
        employer_name="成都某某科技有限公司",
        period_from=date(2025, 1, 1),
        period_to=date(2025, 3, 31),
        opening_balance=yuan("10000.00"),
        lines=lines,
        closing_balance=yuan("13692.21"),
        issued_on=date(2025, 4, 1),
    )


def sample_repayment() -> RepaymentStatement:
    """Instalment 1 from both fund accounts, 2 two days late from the card with penalty, 3 not yet due."""
    instalments = (
        RepaymentInstalment(
            1, date(2025, 2, 15), yuan("880.29"), yuan("1187.50"), date(2025, 2, 15), yuan("880.29"),
            yuan("1187.50"), from_borrower_fund=yuan("1500.00"), from_spouse_fund=yuan("567.79"),
        ),
        RepaymentInstalment(
            2, date(2025, 3, 15), yuan("882.38"), yuan("1185.41"), date(2025, 3, 17), yuan("882.38"),
            yuan("1185.41"), yuan("0.30"), from_card=yuan("2068.09"), days_overdue=2, penalty=yuan("0.30"),
        ),
        RepaymentInstalment(3, date(2025, 4, 15), yuan("884.48"), yuan("1183.31")),
    )  # fmt: skip
    return RepaymentStatement(
        centre_name=CENTRE,
        loan_number=LOAN_NUMBER,
        borrower_name="张伟",
        principal=yuan("500000.00"),
        annual_rate=Decimal("2.85"),
        term_months=360,
        method=RepaymentMethod.EQUAL_INSTALMENT,
        instalments=instalments,
        issued_on=date(2025, 4, 1),
    )


def sample_certificate() -> ContributionCertificate:
    return ContributionCertificate(
        centre_name=CENTRE,
        member_name="张伟",
        id_number="110101199003071234",
        account_number="100200300400",
        employer_name="成都某某科技有限公司",
        opened_on=date(2015, 7, 1),
        account_state=AccountStatus.NORMAL,
        contribution_base=yuan("8000.00"),
        employer_ratio=Decimal("12"),
        member_ratio=Decimal("12"),
        monthly_amount=yuan("1920.00"),
        paid_up_to="2025-03",
        months_paid_total=117,
        months_paid_consecutive=36,
        six_months_before_continuous=True,
        balance=yuan("13692.21"),
        has_outstanding_fund_loan=True,
        fund_loans_used=1,
        has_fraud_record=False,
        as_of=date(2025, 3, 31),
        issued_on=date(2025, 4, 1),
        certificate_number="ZM2025040100001",
        verification_code="7F3A-9C2E-51D8",
    )


def page_texts(pdf: bytes) -> list[str]:
    with pymupdf.open(stream=pdf, filetype="pdf") as document:
        return [page.get_text() for page in document]


def non_white_share(pdf: bytes, clip_text: str | None = None) -> float:
    """Share of page-1 pixels that are not white, over the page or the box of ``clip_text``."""
    with pymupdf.open(stream=pdf, filetype="pdf") as document:
        page = document[0]
        clip = page.search_for(clip_text)[0] if clip_text else None
        pixmap = page.get_pixmap(dpi=72 if clip is None else 200, clip=clip, colorspace=pymupdf.csGRAY)
        samples = pixmap.samples
        return sum(1 for value in samples if value < 200) / len(samples)


def embedded_fonts(pdf: bytes) -> list[tuple[str, str]]:
    with pymupdf.open(stream=pdf, filetype="pdf") as document:
        return [(font[3], font[1]) for font in document[0].get_fonts()]


def money_values(tree: Any, money_keys: set[str]) -> list[Any]:
    if isinstance(tree, dict):
        found = [value for key, value in tree.items() if key in money_keys]
        return found + [item for value in tree.values() for item in money_values(value, money_keys)]
    if isinstance(tree, list):
        return [item for value in tree for item in money_values(value, money_keys)]
    return []


def money_field_names(*kinds: type) -> set[str]:
    return {field.name for kind in kinds for field in fields(kind) if field.type in ("Money", Money)}


# -- PDF: Chinese renders and extracts ------------------------------------------


def test_account_statement_pdf_shows_chinese_lines_reversal_and_amounts() -> None:
    text = "\n".join(page_texts(render_account_statement_pdf(sample_statement())))
    for expected in ("个人账户明细", CENTRE, "张伟", "1101**********1234", "汇缴", "补缴", "冲还贷", "冲正"):
        assert expected in text
    for amount in ("2,067.79", "10,000.00", "13,692.21", "2,567.79", "6,260.00"):
        assert amount in text
    assert LOAN_NUMBER in text  # OFF-5: the offset line names its loan
    assert "原流水 S202502120003" in text  # COR-1: the reversal names its original
    assert "第 1 页 / 共 1 页" in text


def test_repayment_statement_pdf_shows_source_split_overdue_and_penalty() -> None:
    text = "\n".join(page_texts(render_repayment_statement_pdf(sample_repayment())))
    for expected in ("还款明细", "借款人公积金", "配偶公积金", "银行卡", "逾期天数", "罚息", "等额本息", LOAN_NUMBER):
        assert expected in text
    for amount in ("500,000.00", "880.29", "1,187.50", "1,500.00", "567.79", "2,068.09", "2.85%"):
        assert amount in text


def test_certificate_pdf_shows_every_st1_label_and_the_verification_code() -> None:
    text = "\n".join(page_texts(render_contribution_certificate_pdf(sample_certificate())))
    labels = (
        "缴存证明", "姓名", "证件号码", "个人账号", "单位名称", "开户日期", "账户状态", "缴存基数", "缴存比例",
        "月缴存额", "缴至年月", "累计缴存月数", "连续缴存月数", "前6个月是否连续缴存", "账户余额",
        "有无未结清公积金贷款", "已使用公积金贷款次数", "骗提骗贷记录", "出具日期", "证明编号", "验证码",
    )  # fmt: skip
    for expected in labels:
        assert expected in text
    for value in ("110101199003071234", "8,000.00", "1,920.00", "13,692.21", "2025年03月", "7F3A-9C2E-51D8"):
        assert value in text


@pytest.mark.parametrize(
    ("render", "sample", "title"),
    [
        (render_account_statement_pdf, sample_statement, "个人账户明细"),
        (render_repayment_statement_pdf, sample_repayment, "还款明细"),
        (render_contribution_certificate_pdf, sample_certificate, "缴存证明"),
    ],
)
def test_page_one_renders_ink_and_the_chinese_title_has_glyphs(render: Any, sample: Any, title: str) -> None:
    pdf = render(sample())
    assert pdf.startswith(b"%PDF-")
    assert non_white_share(pdf) > NON_WHITE_SHARE_MIN
    assert non_white_share(pdf, clip_text=title) > 0.05  # the CJK glyphs themselves are drawn


def test_fonts_are_embedded_truetype() -> None:
    fonts = embedded_fonts(render_account_statement_pdf(sample_statement()))
    assert any("DroidSansFallback" in name and kind == "ttf" for name, kind in fonts)
    assert all(kind == "ttf" for _name, kind in fonts)  # no viewer-dependent font on an ordinary document


def test_same_document_gives_the_same_bytes() -> None:
    assert render_repayment_statement_pdf(sample_repayment()) == render_repayment_statement_pdf(sample_repayment())


def test_a_character_outside_the_shipped_font_still_extracts() -> None:
    statement = replace(sample_statement(), member_name="张㐀伟")  # U+3400, CJK Extension A
    assert "张㐀伟" in "\n".join(page_texts(render_account_statement_pdf(statement)))


def test_long_statement_repeats_header_and_numbers_pages() -> None:
    lines, balance = [], ZERO
    for index in range(120):
        balance = balance + yuan("1920.00")
        on = date(2015, 1, 10) + timedelta(days=30 * index)
        lines.append(line(on, EntryKind.REMITTANCE, "0", "1920.00", str(balance), reason_code="01"))
    statement = replace(
        sample_statement(), period_from=date(2015, 1, 1), period_to=date(2025, 12, 31),
        opening_balance=ZERO, lines=tuple(lines), closing_balance=balance,
    )  # fmt: skip
    texts = page_texts(render_account_statement_pdf(statement))
    assert len(texts) > 1
    for number, text in enumerate(texts, start=1):
        assert "个人账户明细" in text and "业务日期" in text
        assert f"第 {number} 页 / 共 {len(texts)} 页" in text


# -- JSON -----------------------------------------------------------------------


def test_certificate_json_has_every_st1_field() -> None:
    result = contribution_certificate_to_json(sample_certificate())
    for name in ST1_CERTIFICATE_FIELDS:
        assert name in result, name
    assert result["account_state"] == "01" and result["account_state_zh"] == "正常"
    assert result["paid_up_to"] == "2025-03"
    assert result["six_months_before_continuous"] is True
    assert result["has_outstanding_fund_loan"] is True and result["has_fraud_record"] is False
    assert result["employer_ratio"] == "12"
    assert result["verification_code"] == "7F3A-9C2E-51D8"
    assert ISO_DATE.match(result["issued_on"]) and ISO_DATE.match(result["opened_on"])


@pytest.mark.parametrize(
    ("to_json", "sample"),
    [
        (account_statement_to_json, sample_statement),
        (repayment_statement_to_json, sample_repayment),
        (contribution_certificate_to_json, sample_certificate),
    ],
)
def test_json_money_is_text_with_two_decimals(to_json: Any, sample: Any) -> None:
    result = to_json(sample())
    json.dumps(result, ensure_ascii=False)  # plain JSON types only
    kinds = (StatementLine, AccountStatement, RepaymentInstalment, RepaymentStatement, ContributionCertificate)
    keys = money_field_names(*kinds) | {"total_debit", "total_credit"}
    values = money_values(result, keys)
    assert values
    assert all(isinstance(value, str) and MONEY_TEXT.match(value) for value in values), values


def test_statement_json_lines_carry_kind_reversal_and_totals() -> None:
    result = account_statement_to_json(sample_statement())
    reversal = result["lines"][3]
    assert reversal["is_reversal"] is True and reversal["mark_zh"] == "冲正"
    assert reversal["reverses_serial"] == "S202502120003"
    assert reversal["recorded_at"] == "2025-02-14T16:00:00"
    offset = result["lines"][4]
    assert (offset["kind"], offset["kind_zh"], offset["reason_code"], offset["reference"]) == (
        "OFFSET", "冲还贷", "06", LOAN_NUMBER,
    )  # fmt: skip
    totals = (result["total_debit"], result["total_credit"], result["closing_balance"])
    assert totals == ("2567.79", "6260.00", "13692.21")


def test_repayment_json_totals_per_source() -> None:
    totals = repayment_statement_to_json(sample_repayment())["totals"]
    by_source = (totals["from_borrower_fund"], totals["from_spouse_fund"], totals["from_card"])
    assert by_source == ("1500.00", "567.79", "2068.09")
    assert totals["penalty"] == "0.30"


# -- invariants: a wrong document is refused before it is printed --------------


def test_running_balance_that_does_not_chain_is_refused() -> None:
    statement = sample_statement()
    broken = statement.lines[:-1] + (replace(statement.lines[-1], balance=yuan("13692.22")),)
    with pytest.raises(DocumentError, match="running balance"):
        replace(statement, lines=broken, closing_balance=yuan("13692.22"))


def test_offset_line_needs_reason_06_and_the_loan_number() -> None:
    with pytest.raises(DocumentError, match="OFF-5"):
        line(date(2025, 2, 15), EntryKind.OFFSET, "2067.79", "0", "0.00", reason_code="05", reference=LOAN_NUMBER)
    with pytest.raises(DocumentError, match="OFF-5"):
        line(date(2025, 2, 15), EntryKind.OFFSET, "2067.79", "0", "0.00", reason_code="06")


def test_reversal_posts_on_the_mirrored_side() -> None:
    with pytest.raises(DocumentError, match="COR-1"):
        line(date(2025, 2, 12), EntryKind.BACK_PAYMENT, "0", "500.00", "500.00", is_reversal=True)


def test_sources_must_add_up_to_what_was_paid() -> None:
    with pytest.raises(DocumentError, match="OFF-5"):
        RepaymentInstalment(
            1, date(2025, 2, 15), yuan("880.29"), yuan("1187.50"), date(2025, 2, 15), yuan("880.29"),
            yuan("1187.50"), from_borrower_fund=yuan("1500.00"),
        )  # fmt: skip


def test_statement_shows_the_id_number_masked() -> None:
    with pytest.raises(DocumentError, match="masked"):
        replace(sample_statement(), id_number_masked="110101199003071234")


def test_statement_lines_have_a_maximum() -> None:
    statement = sample_statement()
    lines = statement.lines + (statement.lines[-1],) * (STATEMENT_LINES_MAX + 1 - len(statement.lines))
    with pytest.raises(DocumentError, match=str(STATEMENT_LINES_MAX)):
        replace(statement, lines=lines)


def test_certificate_counts_are_consistent() -> None:
    with pytest.raises(DocumentError):
        replace(sample_certificate(), months_paid_consecutive=118)
    with pytest.raises(DocumentError):
        replace(sample_certificate(), fund_loans_used=0)
    with pytest.raises(DocumentError):
        replace(sample_certificate(), paid_up_to="2025-13")


def test_mask_id_number_keeps_four_at_each_end() -> None:
    assert mask_id_number("110101199003071234") == "1101**********1234"


# -- layout: every text stays inside its table cell -----------------------------------------------------
INTEREST_SERIAL = "int:2026:1101050000000001"  # the posting id of a 结息 line (INT-1): 25 characters
ADJUSTMENT_SERIAL = "rev:int:2026:1101050000000001:interest"  # the longest kind: an interest adjustment (COR-3)


def statement_with_interest_lines() -> AccountStatement:
    statement = sample_statement()
    last = statement.lines[-1]
    interest = line(date(2025, 6, 30), EntryKind.INTEREST, "0", "180.35", "13872.56", reason_code="",
                    serial=INTEREST_SERIAL, reference="结息 2024-07-01..2025-06-30 " + INTEREST_SERIAL)
    adjusted = line(date(2025, 6, 30), EntryKind.INTEREST_ADJUSTMENT, "0", "0.41", "13872.97",
                    serial=ADJUSTMENT_SERIAL)
    assert last.balance == yuan("13692.21")
    return replace(statement, lines=(*statement.lines, interest, adjusted), closing_balance=yuan("13872.97"),
                   period_to=date(2025, 6, 30))


def text_crossing_a_column_rule(pdf: bytes) -> list[tuple[str, float, float]]:
    """Words whose box crosses a vertical rule of a table drawn beside them: text overflowing its column.
    Measured as a reader sees it: pymupdf's word boxes against the grid lines the PDF draws."""
    crossing = []
    with pymupdf.open(stream=pdf, filetype="pdf") as document:
        for page in document:
            rules = []
            for drawing in page.get_drawings():
                for item in drawing["items"]:
                    if item[0] == "l" and abs(item[1].x - item[2].x) < 0.1 and abs(item[1].y - item[2].y) > 1:
                        rules.append((item[1].x, min(item[1].y, item[2].y), max(item[1].y, item[2].y)))
            for x0, y0, x1, y1, word, *_ in page.get_text("words"):
                middle = (y0 + y1) / 2
                for x, top, bottom in rules:
                    if top <= middle <= bottom and x0 + 0.5 < x < x1 - 0.5:
                        crossing.append((word, x0, x1))
    return crossing


def test_the_interest_lines_long_serial_stays_inside_its_column() -> None:
    statement = statement_with_interest_lines()
    pdf = render_account_statement_pdf(statement)
    assert text_crossing_a_column_rule(pdf) == []
    text = "".join(page_texts(pdf)).replace("\n", "")
    assert INTEREST_SERIAL in text and ADJUSTMENT_SERIAL in text  # wrapped, not cut


def test_no_repayment_statement_text_crosses_a_column() -> None:
    assert text_crossing_a_column_rule(render_repayment_statement_pdf(sample_repayment())) == []


def test_repayment_statement_shows_each_instalments_rate_and_the_current_rate() -> None:
    """ST-1 after a 1 January repricing (LN-2): the header shows the rate in force, each row its own."""
    sample = sample_repayment()
    repriced = replace(sample.instalments[2], annual_rate=Decimal("2.60"))
    statement = replace(sample, annual_rate=Decimal("2.60"), disbursement_annual_rate=Decimal("2.85"),
                        instalments=(replace(sample.instalments[0], annual_rate=Decimal("2.85")),
                                     replace(sample.instalments[1], annual_rate=Decimal("2.85")), repriced))
    document = repayment_statement_to_json(statement)
    assert (document["annual_rate"], document["disbursement_annual_rate"]) == ("2.60", "2.85")
    assert [row["annual_rate"] for row in document["instalments"]] == ["2.85", "2.85", "2.60"]
    text = "\n".join(page_texts(render_repayment_statement_pdf(statement)))
    assert "当前年利率" in text and "发放时年利率" in text and "年利率" in text
    assert text.count("2.6%") == 2 and text.count("2.85%") == 3  # header once + rows
    with pytest.raises(DocumentError):
        replace(sample.instalments[0], annual_rate=Decimal("-1"))
