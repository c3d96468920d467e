"""PDF form of the member documents (ST-1), drawn with reportlab platypus.

Every page carries a header with the document's Chinese title and the centre, and a
footer "第 n 页 / 共 m 页". Fonts are embedded so any viewer shows and extracts the
Chinese (ADR 0004): Han characters and CJK punctuation come from the Droid Sans
Fallback subset shipped in ``ledger/fonts``, Latin letters and digits from Bitstream
Vera inside the reportlab wheel. Text is split into runs by which font has each
character; the rare character neither has (CJK Extension A and beyond) falls back to
reportlab's CID font STSong-Light, which is not embedded but still extracts. Output is
deterministic (``invariant``): the same document gives the same bytes.
"""

from __future__ import annotations

import functools
import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ledger.money import Money
from ledger.reports.documents import (
    AccountStatement,
    ContributionCertificate,
    RepaymentInstalment,
    RepaymentStatement,
    StatementLine,
)

FONT_CJK = "GjjDroidSansFallback"
FONT_LATIN = "GjjVera"
FONT_FALLBACK = "STSong-Light"
CJK_FONT_FILE = Path(__file__).resolve().parent.parent / "fonts" / "DroidSansFallbackFull-subset.ttf"
LATIN_FONT_FILE = Path(reportlab.__file__).resolve().parent / "fonts" / "Vera.ttf"

PDF_PAGES_MAX = 400
PDF_BYTES_MAX = 20 * 1024 * 1024
BODY_POINTS = 7.5
LABEL_POINTS = 9
TITLE_POINTS = 14
MARGIN = 12 * mm
HEADER_HEIGHT = 18 * mm
FOOTER_HEIGHT = 10 * mm
CELL_PADDING = 2 * 2.5  # left and right padding of a table cell (see _grid_style)
GRID_COLOUR = colors.HexColor("#9a9a9a")
HEADER_FILL = colors.HexColor("#e4e8ee")
STRIPE_FILL = colors.HexColor("#f6f7f9")
REVERSAL_COLOUR = "#b00020"
PRODUCER = "gjj-ledger"


class ReportSizeError(RuntimeError):
    """The rendered PDF broke a size limit; print a shorter period instead."""


# -- fonts and mixed-script text ---------------------------------------------


@functools.cache
def _font_coverage() -> tuple[tuple[str, frozenset[int]], ...]:
    """Register the fonts once; the fonts to try, in order, with the code points each has."""
    latin = TTFont(FONT_LATIN, str(LATIN_FONT_FILE))
    cjk = TTFont(FONT_CJK, str(CJK_FONT_FILE))
    pdfmetrics.registerFont(latin)
    pdfmetrics.registerFont(cjk)
    pdfmetrics.registerFont(UnicodeCIDFont(FONT_FALLBACK))
    return ((FONT_LATIN, frozenset(latin.face.charToGlyph)), (FONT_CJK, frozenset(cjk.face.charToGlyph)))


def _font_for(char: str) -> str:
    for name, code_points in _font_coverage():
        if ord(char) in code_points:
            return name
    return FONT_FALLBACK


def text_runs(text: str) -> list[tuple[str, str]]:
    """Split text into (font name, run) pairs so each character is drawn by a font that has it.

    Every kind of white space becomes an ASCII space in the Latin font: reportlab re-joins
    wrapped words with U+0020, which the CJK font lacks.
    """
    runs: list[tuple[str, str]] = []
    for char in text:
        char = " " if char.isspace() else char
        font = _font_for(char)
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + char)
        else:
            runs.append((font, char))
    return runs


def _markup(text: str) -> str:
    return "".join(f'<font name="{font}">{escape(run)}</font>' for font, run in text_runs(text))


def _style(points: float = BODY_POINTS, alignment: int = TA_LEFT) -> ParagraphStyle:
    return ParagraphStyle(
        name=f"gjj-{points}-{alignment}",
        fontName=FONT_LATIN,
        fontSize=points,
        leading=points * 1.3,
        alignment=alignment,
        wordWrap="CJK",
    )


def _para(text: str, points: float = BODY_POINTS, alignment: int = TA_LEFT) -> Paragraph:
    return Paragraph(_markup(text), _style(points, alignment))


def _cell(text: str, width: float | None = None) -> str | Paragraph:
    """Plain text when the Latin font has every character and it fits ``width`` (fast); otherwise a paragraph,
    which wraps inside its column (a long serial breaks between characters) and mixes fonts."""
    if all(_font_for(char) == FONT_LATIN for char in text) and (
            width is None or pdfmetrics.stringWidth(text, FONT_LATIN, BODY_POINTS) <= width - CELL_PADDING):
        return text
    return _para(text)


def _draw_text(canvas: Canvas, x: float, y: float, text: str, points: float, anchor: str = "left") -> None:
    runs = text_runs(text)
    width = sum(pdfmetrics.stringWidth(run, font, points) for font, run in runs)
    x -= {"left": 0.0, "centre": width / 2, "right": width}[anchor]
    for font, run in runs:
        canvas.setFont(font, points)
        canvas.drawString(x, y, run)
        x += pdfmetrics.stringWidth(run, font, points)


# -- page frame: header, footer, page numbers ---------------------------------


class _NumberedCanvas(Canvas):
    """Holds pages back until the end so each footer can say how many pages there are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page_states: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._page_states.append(dict(self.__dict__))
        if len(self._page_states) > PDF_PAGES_MAX:
            raise ReportSizeError(f"more than {PDF_PAGES_MAX} pages")
        self._startPage()

    def save(self) -> None:
        page_total = len(self._page_states)
        for state in self._page_states:
            self.__dict__.update(state)
            width = self._pagesize[0]
            _draw_text(self, width / 2, MARGIN / 2, f"第 {self._pageNumber} 页 / 共 {page_total} 页", 8, "centre")
            super().showPage()
        super().save()


def _page_frame(title: str, centre_name: str, issued_on: date) -> Callable[[Canvas, Any], None]:
    def draw(canvas: Canvas, template: Any) -> None:
        width, height = template.pagesize
        canvas.saveState()
        top = height - MARGIN
        _draw_text(canvas, width / 2, top - TITLE_POINTS, title, TITLE_POINTS, "centre")
        _draw_text(canvas, MARGIN, top - HEADER_HEIGHT + 4, centre_name, 8)
        _draw_text(canvas, width - MARGIN, top - HEADER_HEIGHT + 4, f"打印日期 {issued_on.isoformat()}", 8, "right")
        canvas.setStrokeColor(GRID_COLOUR)
        canvas.line(MARGIN, top - HEADER_HEIGHT + 1, width - MARGIN, top - HEADER_HEIGHT + 1)
        canvas.restoreState()

    return draw


def _build_pdf(story: Sequence[Flowable], title: str, centre_name: str, issued_on: date, pagesize: Any) -> bytes:
    _font_coverage()
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=pagesize,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + HEADER_HEIGHT + 3 * mm,
        bottomMargin=MARGIN + FOOTER_HEIGHT / 2,
        title=title,
        author=centre_name,
        subject=title,
        creator=PRODUCER,
        producer=PRODUCER,
        invariant=1,
        lang="zh-CN",
        initialFontName=FONT_LATIN,
    )
    frame = _page_frame(title, centre_name, issued_on)
    template.build(list(story), onFirstPage=frame, onLaterPages=frame, canvasmaker=_NumberedCanvas)
    data = buffer.getvalue()
    if len(data) > PDF_BYTES_MAX:
        raise ReportSizeError(f"PDF of {len(data)} bytes is over {PDF_BYTES_MAX}")
    return data


# -- tables ---------------------------------------------------------------------


def _grid_style(header_rows: int, right_columns: Sequence[int], has_total_row: bool) -> TableStyle:
    commands: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), FONT_LATIN),
        ("FONTSIZE", (0, 0), (-1, -1), BODY_POINTS),
        ("GRID", (0, 0), (-1, -1), 0.25, GRID_COLOUR),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), HEADER_FILL),
        ("ROWBACKGROUNDS", (0, header_rows), (-1, -1), [colors.white, STRIPE_FILL]),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
    ]
    commands += [("ALIGN", (column, header_rows), (column, -1), "RIGHT") for column in right_columns]
    if has_total_row:
        commands.append(("BACKGROUND", (0, -1), (-1, -1), HEADER_FILL))
    return TableStyle(commands)


def _grid(header: Sequence[str], rows: list[list[Any]], widths: Sequence[float], right_columns: Sequence[int]) -> Table:
    """A table whose header row repeats on every page; the last row is the totals row."""
    header_cells = [_para(text, BODY_POINTS, TA_CENTER) for text in header]
    table = Table([header_cells, *rows], colWidths=list(widths), repeatRows=1)
    table.setStyle(_grid_style(1, right_columns, has_total_row=True))
    return table


def _facts(pairs: Sequence[tuple[str, str]], columns: int, width: float, label_share: float = 0.36) -> Table:
    """Label/value pairs laid out ``columns`` pairs to a row."""
    rows: list[list[Any]] = []
    for start in range(0, len(pairs), columns):
        row: list[Any] = []
        for label, value in pairs[start : start + columns]:
            row += [_para(label, LABEL_POINTS), _para(value, LABEL_POINTS)]
        row += [""] * (2 * columns - len(row))
        rows.append(row)
    label_width = width * label_share / columns
    value_width = width / columns - label_width
    table = Table(rows, colWidths=[label_width, value_width] * columns)
    commands = [
        ("FONTNAME", (0, 0), (-1, -1), FONT_LATIN),
        ("GRID", (0, 0), (-1, -1), 0.25, GRID_COLOUR),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    commands += [("BACKGROUND", (column, 0), (column, -1), HEADER_FILL) for column in range(0, 2 * columns, 2)]
    table.setStyle(TableStyle(commands))
    return table


def _money(value: Money) -> str:
    return value.formatted()


def _percent(value: Decimal) -> str:
    return f"{format(value.normalize(), 'f')}%"


def _yes_no(value: bool) -> str:
    return "是" if value else "否"


def _period_zh(period: str) -> str:
    year, month = period.split("-")
    return f"{year}年{month}月"


# -- account statement (个人账户明细) --------------------------------------------

STATEMENT_HEADER = ("业务日期", "记账时间", "业务类型", "原因", "摘要/关联号", "业务流水号", "支出(借方)", "存入(贷方)", "余额", "冲正标志")
STATEMENT_WIDTHS = (54, 84, 46, 26, 106, 84, 68, 68, 74, 104)
STATEMENT_MONEY_COLUMNS = (6, 7, 8)


def _statement_row(line: StatementLine, widths: Sequence[float]) -> list[Any]:
    mark: str | Paragraph = ""
    if line.is_reversal:
        original = f"<br/>{_markup('原流水 ' + line.reverses_serial)}" if line.reverses_serial else ""
        mark = Paragraph(f'<font color="{REVERSAL_COLOUR}">{_markup("冲正")}{original}</font>', _style())
    return [
        line.value_date.isoformat(),
        line.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
        _cell(line.kind.label_zh),
        _cell(line.reason_code, widths[3]),
        _cell(line.reference, widths[4]),
        _cell(line.serial, widths[5]),
        _money(line.debit) if line.debit else "",
        _money(line.credit) if line.credit else "",
        _money(line.balance),
        mark,
    ]


def _statement_facts(statement: AccountStatement, width: float) -> Table:
    period = f"{statement.period_from.isoformat()} 至 {statement.period_to.isoformat()}"
    pairs = [
        ("姓名", statement.member_name),
        ("证件号码", statement.id_number_masked),
        ("个人账号", statement.account_number),
        ("单位名称", statement.employer_name),
        ("起止日期", period),
        ("笔数", str(len(statement.lines))),
        ("期初余额", _money(statement.opening_balance)),
        ("期末余额", _money(statement.closing_balance)),
        ("打印日期", statement.issued_on.isoformat()),
    ]
    return _facts(pairs, 3, width)


def render_account_statement_pdf(statement: AccountStatement) -> bytes:
    """个人账户明细 / 缴存明细 as PDF bytes (A4 landscape)."""
    _font_coverage()
    pagesize = landscape(A4)
    width = pagesize[0] - 2 * MARGIN
    widths = [column * width / sum(STATEMENT_WIDTHS) for column in STATEMENT_WIDTHS]
    rows = [_statement_row(line, widths) for line in statement.lines]
    totals = [_money(statement.total_debit), _money(statement.total_credit), _money(statement.closing_balance)]
    rows.append([_para("合计"), "", "", "", "", "", *totals, ""])
    story = [
        _statement_facts(statement, width),
        Spacer(1, 4 * mm),
        _grid(STATEMENT_HEADER, rows, widths, STATEMENT_MONEY_COLUMNS),
    ]
    return _build_pdf(story, statement.title_zh, statement.centre_name, statement.issued_on, pagesize)


# -- repayment statement (还款明细) ----------------------------------------------

REPAYMENT_HEADER = (
    "期次", "应还日期", "年利率", "应还本金", "应还利息", "实还日期", "实还本金", "实还利息", "实还罚息",
    "借款人公积金", "配偶公积金", "银行卡", "逾期天数", "罚息",
)  # fmt: skip
REPAYMENT_WIDTHS = (26, 54, 40, 58, 56, 54, 58, 56, 50, 62, 62, 58, 36, 50)
REPAYMENT_MONEY_COLUMNS = (2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13)
REPAYMENT_TOTAL_COLUMNS = {
    3: "due_principal", 4: "due_interest", 6: "paid_principal", 7: "paid_interest", 8: "paid_penalty",
    9: "from_borrower_fund", 10: "from_spouse_fund", 11: "from_card", 13: "penalty",
}  # fmt: skip


def _instalment_row(instalment: RepaymentInstalment) -> list[Any]:
    return [
        str(instalment.number),
        instalment.due_on.isoformat(),
        _percent(instalment.annual_rate) if instalment.annual_rate is not None else "",
        _money(instalment.due_principal),
        _money(instalment.due_interest),
        instalment.paid_on.isoformat() if instalment.paid_on else "",
        _money(instalment.paid_principal),
        _money(instalment.paid_interest),
        _money(instalment.paid_penalty),
        _money(instalment.from_borrower_fund),
        _money(instalment.from_spouse_fund),
        _money(instalment.from_card),
        str(instalment.days_overdue),
        _money(instalment.penalty),
    ]


def _repayment_totals_row(statement: RepaymentStatement) -> list[Any]:
    totals = statement.totals()
    row: list[Any] = [_para("合计")] + [""] * (len(REPAYMENT_HEADER) - 1)
    for column, name in REPAYMENT_TOTAL_COLUMNS.items():
        row[column] = _money(totals[name])
    return row


def _repayment_facts(statement: RepaymentStatement) -> list[tuple[str, str]]:
    """The header: the rate in force now (ST-1; after a 1 January repricing the new one) and at disbursement."""
    started = statement.disbursement_annual_rate
    return [
        ("贷款编号", statement.loan_number),
        ("借款人", statement.borrower_name),
        ("贷款本金", _money(statement.principal)),
        ("当前年利率", _percent(statement.annual_rate)),
        ("发放时年利率", _percent(started) if started is not None else ""),
        ("贷款期限", f"{statement.term_months} 个月"),
        ("还款方式", statement.method.label_zh),
    ]


def render_repayment_statement_pdf(statement: RepaymentStatement) -> bytes:
    """还款明细 as PDF bytes (A4 landscape), with each instalment's rate and source split (OFF-5)."""
    _font_coverage()
    pagesize = landscape(A4)
    width = pagesize[0] - 2 * MARGIN
    rows = [_instalment_row(instalment) for instalment in statement.instalments]
    rows.append(_repayment_totals_row(statement))
    widths = [column * width / sum(REPAYMENT_WIDTHS) for column in REPAYMENT_WIDTHS]
    story = [
        _facts(_repayment_facts(statement), 3, width),
        Spacer(1, 4 * mm),
        _grid(REPAYMENT_HEADER, rows, widths, REPAYMENT_MONEY_COLUMNS),
    ]
    return _build_pdf(story, statement.title_zh, statement.centre_name, statement.issued_on, pagesize)


# -- contribution certificate (缴存证明) -------------------------------------------


def _certificate_pairs(certificate: ContributionCertificate) -> list[tuple[str, str]]:
    state = certificate.account_state
    ratios = f"单位 {_percent(certificate.employer_ratio)} / 个人 {_percent(certificate.member_ratio)}"
    return [
        ("姓名", certificate.member_name),
        ("证件号码", certificate.id_number),
        ("个人账号", certificate.account_number),
        ("单位名称", certificate.employer_name),
        ("开户日期", certificate.opened_on.isoformat()),
        ("账户状态", f"{state.label_zh}（{state.code}）"),
        ("缴存基数", _money(certificate.contribution_base)),
        ("缴存比例", ratios),
        ("月缴存额", _money(certificate.monthly_amount)),
        ("缴至年月", _period_zh(certificate.paid_up_to)),
        ("累计缴存月数", str(certificate.months_paid_total)),
        ("连续缴存月数", str(certificate.months_paid_consecutive)),
        ("前6个月是否连续缴存", _yes_no(certificate.six_months_before_continuous)),
        ("账户余额", _money(certificate.balance)),
        ("有无未结清公积金贷款", "有" if certificate.has_outstanding_fund_loan else "无"),
        ("已使用公积金贷款次数", str(certificate.fund_loans_used)),
        ("骗提骗贷记录", "有" if certificate.has_fraud_record else "无"),
        ("截止日期", certificate.as_of.isoformat()),
        ("证明编号", certificate.certificate_number),
        ("验证码", certificate.verification_code),
    ]


def _certificate_text(certificate: ContributionCertificate) -> list[Flowable]:
    opening = (
        f"兹证明 {certificate.member_name}（证件号码 {certificate.id_number}）在本中心缴存住房公积金，"
        f"截至 {certificate.as_of.isoformat()} 的缴存情况如下："
    )
    closing = (
        f"本证明编号 {certificate.certificate_number}，验证码 {certificate.verification_code}，"
        "可凭验证码向本中心核验真伪。本证明仅反映截止日期的账户情况。"
    )
    return [
        _para(opening, 10.5),
        Spacer(1, 3 * mm),
        _para(closing, 9),
        Spacer(1, 10 * mm),
        _para(f"出具单位：{certificate.centre_name}（盖章）", 10.5, TA_RIGHT),
        _para(f"出具日期：{certificate.issued_on.isoformat()}", 10.5, TA_RIGHT),
    ]


def render_contribution_certificate_pdf(certificate: ContributionCertificate) -> bytes:
    """缴存证明 as PDF bytes (A4 portrait) with every ST-1 field and the verification code."""
    _font_coverage()
    pagesize = A4
    width = pagesize[0] - 2 * MARGIN
    intro, *rest = _certificate_text(certificate)
    story = [
        Spacer(1, 2 * mm),
        intro,
        Spacer(1, 3 * mm),
        _facts(_certificate_pairs(certificate), 2, width, label_share=0.46),
        Spacer(1, 5 * mm),
        *rest,
    ]
    return _build_pdf(story, certificate.title_zh, certificate.centre_name, certificate.issued_on, pagesize)
