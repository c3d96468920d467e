"""Bank file formats (BNK-1, BNK-3): the examples of BANK-FORMATS.md, byte-for-byte round trips, and refusals.

Every malformed file must be refused whole with the line number, field and rule of each problem; text
that cannot be encoded is reported, never replaced; GB18030 takes what GBK cannot.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bank_adapters.formats import (
    AmbiguousSerialError,
    BankFileError,
    CardNumberError,
    DebitBatch,
    DebitFileType,
    OtherBankDebit,
    ResultFile,
    ResultLine,
    ResultSummary,
    SameBankDebit,
    Serial,
    SerialNumberError,
    SplitFile,
    SplitRecord,
    StatementFile,
    StatementLine,
    UnencodableTextError,
    UnsupportedEncodingError,
    find_serial,
    find_serials,
    format_serial,
    is_valid_card,
    parse_debit_batch,
    parse_debit_batch_csv,
    parse_debit_control,
    parse_result_file,
    parse_result_file_csv,
    parse_serial,
    parse_split_file,
    parse_split_file_csv,
    parse_statement,
    parse_statement_csv,
    validate_card,
    write_debit_batch,
    write_debit_batch_csv,
    write_debit_control,
    write_result_file,
    write_result_file_csv,
    write_split_file,
    write_split_file_csv,
    write_statement,
    write_statement_csv,
)
from bank_adapters.interface import (
    BankAdapter,
    CsvAdapter,
    FileNameError,
    FolderTransport,
    NationalFileAdapter,
    OutgoingFileConflictError,
)
from ledger.money import Money

ENCODINGS = ("GBK", "GB18030")
OUT = "@|$"
CENTRE = "某市住房公积金管理中心"

EXAMPLE_HEADER = f"H@|$1@|$3100000001@|${CENTRE}@|$1@|$2067.79@|$PJ202502150001@|$"
EXAMPLE_DEBIT = "1@|$2067.79@|$6217000000000000000@|$张三@|$0@|$202502150000001 公积金贷款扣划@|$"
EXAMPLE_OTHER_BANK = (
    "2@|$1391.79@|$6228480000000000001@|$李四@|$103100000019@|$103100000027@|$@|$XY2025000001@|$1@|$"
    "202502150000002 公积金贷款扣划@|$"
)
EXAMPLE_SUMMARY = "$20250215|310000|B20250215001|1|1|156|1|2|3459.58|1|2067.79|1|1391.79|贷款扣款|"
EXAMPLE_SUCCESS = f"1|156|1|2067.79|6217000000000000000|张三||3100000001|{CENTRE}||00000||20250215|50026033|||"
EXAMPLE_FAILURE = f"2|156|1|1391.79|6217000000000000001|李四||3100000001|{CENTRE}||E0001|余额不足|20250215|50026141|||"
EXAMPLE_STATEMENT = (
    "1|3100000001|50026033|BDC105|6217000000000000000|张三|2067.79|20250215|103015|152067.79|3100|"
    "202502150000001|156|1|152067.79|0.00|||310000000000|公积金贷款扣划||0001|01|"
)
EXAMPLE_SPLIT = (
    "1@|$LN2025000001@|$202502150000001@|$110101199001011237@|$HT2025000001@|$张三@|$367.79@|$156.57@|$"
    "211.22@|$0.00@|$0.00@|$1700.00@|$723.72@|$976.28@|$0.00@|$0.00@|$202502150000001 按月冲还贷@|$@|$"
)


def gbk(*lines: str, encoding: str = "GBK") -> bytes:
    return "\n".join(lines).encode(encoding)


def problems_of(error: pytest.ExceptionInfo[BankFileError]) -> list[tuple[int, str]]:
    return [(problem.line_number, problem.field) for problem in error.value.problems]


# -- the examples of BANK-FORMATS.md -------------------------------------------------------------
def test_debit_example_lines_parse_to_their_fields() -> None:
    batch = parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT))
    assert batch.header.file_type is DebitFileType.SAME_BANK
    assert (batch.header.account_number, batch.header.account_name) == ("3100000001", CENTRE)
    assert (batch.header.total_count, batch.header.total_amount) == (1, Money("2067.79"))
    debit = batch.records[0]
    memo = "202502150000001 公积金贷款扣划"
    assert debit == SameBankDebit(1, Money("2067.79"), "6217000000000000000", "张三", False, memo)
    assert debit.serial == "202502150000001"


def test_other_bank_and_mixed_lines_parse() -> None:
    header = f"H@|$3@|$3100000001@|${CENTRE}@|$2@|$3459.58@|$PJ1@|$"
    batch = parse_debit_batch(gbk(header, EXAMPLE_DEBIT, EXAMPLE_OTHER_BANK))
    other = batch.records[1]
    assert isinstance(other, OtherBankDebit)
    assert (other.payer_bank_code, other.payer_branch_code) == ("103100000019", "103100000027")
    assert (other.payer_address, other.agreement_number, other.partial_allowed) == ("", "XY2025000001", True)
    assert other.serial == "202502150000002"


def test_result_example_lines_parse_to_their_fields() -> None:
    result = parse_result_file(gbk(EXAMPLE_SUMMARY, EXAMPLE_SUCCESS, EXAMPLE_FAILURE, "#END"))
    assert result.summary.batch_number == "B20250215001"
    assert result.summary.batch_on == date(2025, 2, 15)
    assert (result.summary.success_count, result.summary.failure_amount) == (1, Money("1391.79"))
    success, failure = result.lines
    assert success.succeeded and not failure.succeeded
    assert (success.sequence, success.amount, success.payer_name) == (1, Money("2067.79"), "张三")
    assert (success.payee_name, success.payer_balance, success.host_reference) == (CENTRE, None, "50026033")
    assert (failure.response_code, failure.response_message) == ("E0001", "余额不足")
    assert failure.host_on == date(2025, 2, 15)
    assert result.layout.end_marker


def test_result_amounts_may_omit_decimals_and_are_written_back_as_given() -> None:
    data = gbk(
        "$20250215|310000|B1|1|1|156|1|1|5|1|5|0|0||",
        f"1|156|1|5|6217000000000000000|张三||3100000001|{CENTRE}||00000||20250215|50026033|||",
    )
    result = parse_result_file(data)
    assert result.lines[0].amount == Money("5.00")
    assert write_result_file(result) == data


def test_statement_example_line_parses() -> None:
    outgoing = EXAMPLE_STATEMENT.replace("|2067.79|", "|-2067.79|", 1).replace("|0001|01|", "Y|0001|01|")
    statement = parse_statement(gbk(EXAMPLE_STATEMENT, outgoing.replace("1|3100000001", "2|3100000001", 1)))
    first, second = statement.lines
    assert (first.amount, first.serial, first.reversal) == (Money("2067.79"), "202502150000001", False)
    assert (second.amount, second.reversal, second.is_outgoing) == (Money("-2067.79"), True, True)
    assert first.transaction_on == date(2025, 2, 15)
    assert statement.closing_balance == Money("152067.79")


def test_split_example_line_parses() -> None:
    split = parse_split_file(gbk(EXAMPLE_SPLIT))
    record = split.records[0]
    assert record.repayment == record.principal + record.interest + record.penalty + record.default_fee
    assert (record.non_debit_repayment, record.non_debit_principal) == (Money("1700.00"), Money("723.72"))
    assert record.serial == "202502150000001"


def test_gbk_second_bytes_that_look_like_separators_stay_inside_the_name() -> None:
    assert "亅".encode("GBK") == b"\x81|" and "丂".encode("GBK") == b"\x81@"
    line = EXAMPLE_SUCCESS.replace("张三", "丂亅")
    data = gbk(EXAMPLE_SUMMARY.replace("|2|3459.58|1|2067.79|1|1391.79|", "|1|2067.79|1|2067.79|0|0.00|"), line)
    result = parse_result_file(data)
    assert result.lines[0].payer_name == "丂亅"
    assert write_result_file(result) == data


# -- round trips ---------------------------------------------------------------------------------
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
NAMES = st.text(st.one_of(CJK, st.sampled_from("·")), min_size=1, max_size=8).filter(lambda s: s[0] != "·")
TEXTS = st.text(st.one_of(CJK, st.sampled_from("abcXYZ019 ,\"'-·#$@")), max_size=12)
DIGITS = st.text("0123456789", min_size=6, max_size=19)
BRANCH_CODES = st.text("0123456789", min_size=12, max_size=12)
FEN = st.integers(min_value=1, max_value=999_999_999)
AMOUNTS = FEN.map(lambda fen: Money(Decimal(fen).scaleb(-2)))
SIGNED_AMOUNTS = st.builds(lambda money, negative: -money if negative else money, AMOUNTS, st.booleans())
DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))


@st.composite
def debits(draw: st.DrawFn, sequence: int) -> SameBankDebit | OtherBankDebit:
    common = dict(
        sequence=sequence,
        amount=draw(AMOUNTS),
        payer_account=draw(DIGITS),
        payer_name=draw(NAMES),
        partial_allowed=draw(st.booleans()),
        memo=draw(TEXTS),
    )
    if draw(st.booleans()):
        return SameBankDebit(**common)
    return OtherBankDebit(
        payer_bank_code=draw(BRANCH_CODES),
        payer_branch_code=draw(BRANCH_CODES),
        payer_address=draw(TEXTS),
        agreement_number=draw(DIGITS),
        **common,
    )


@st.composite
def debit_batches(draw: st.DrawFn) -> DebitBatch:
    count = draw(st.integers(min_value=1, max_value=5))
    records = [draw(debits(sequence)) for sequence in range(1, count + 1)]
    return DebitBatch.build(
        account_number=draw(DIGITS), account_name=draw(NAMES), project_number=draw(DIGITS), records=records
    )


@st.composite
def result_files(draw: st.DrawFn) -> ResultFile:
    count = draw(st.integers(min_value=0, max_value=5))
    lines = [
        ResultLine(
            sequence=sequence,
            currency="156",
            cash_remittance="1",
            amount=draw(AMOUNTS),
            payer_account=draw(DIGITS),
            payer_name=draw(NAMES),
            payer_balance=draw(st.none() | SIGNED_AMOUNTS),
            payee_account=draw(DIGITS),
            payee_name=draw(NAMES),
            payee_balance=draw(st.none() | SIGNED_AMOUNTS),
            response_code=draw(st.sampled_from(["00000", "E0001", "E0002"])),
            response_message=draw(TEXTS),
            host_on=draw(st.none() | DATES),
            host_reference=draw(DIGITS),
            receipt_number=draw(TEXTS),
            bank_extension=draw(TEXTS),
        )
        for sequence in range(1, count + 1)
    ]
    summary = ResultSummary.of(
        lines,
        batch_on=draw(DATES),
        institution_code=draw(DIGITS),
        batch_number=draw(DIGITS),
        category="1",
        type_code="1",
        currency="156",
        cash_remittance="1",
        memo=draw(TEXTS),
    )
    return ResultFile(summary, tuple(lines))


@st.composite
def split_records(draw: st.DrawFn, sequence: int) -> SplitRecord:
    parts = [draw(AMOUNTS) for _ in range(8)]
    return SplitRecord(
        sequence=sequence,
        detail_account=draw(DIGITS),
        detail_serial=draw(DIGITS),
        id_number=draw(DIGITS),
        contract_number=draw(DIGITS),
        name=draw(NAMES),
        repayment=Money.sum(parts[:4]),
        principal=parts[0],
        interest=parts[1],
        penalty=parts[2],
        default_fee=parts[3],
        non_debit_repayment=Money.sum(parts[4:]),
        non_debit_principal=parts[4],
        non_debit_interest=parts[5],
        non_debit_default_fee=parts[6],
        non_debit_penalty=parts[7],
        memo=draw(TEXTS),
        remark=draw(TEXTS),
    )


@st.composite
def split_files(draw: st.DrawFn) -> SplitFile:
    count = draw(st.integers(min_value=0, max_value=5))
    return SplitFile(tuple(draw(split_records(sequence)) for sequence in range(1, count + 1)))


@st.composite
def statement_lines(draw: st.DrawFn, sequence: int) -> StatementLine:
    return StatementLine(
        sequence=sequence,
        account_number=draw(DIGITS),
        host_reference=draw(DIGITS),
        transaction_code=draw(TEXTS),
        counterparty_account=draw(DIGITS),
        counterparty_name=draw(NAMES),
        amount=draw(SIGNED_AMOUNTS),
        transaction_on=draw(DATES),
        transaction_time=draw(st.text("0123456789", min_size=6, max_size=6)),
        available_amount=draw(st.none() | SIGNED_AMOUNTS),
        institution_code=draw(DIGITS),
        remark=draw(TEXTS),
        currency="156",
        cash_remittance="1",
        balance=draw(st.none() | SIGNED_AMOUNTS),
        overdraft_available=draw(st.none() | SIGNED_AMOUNTS),
        voucher_kind=draw(TEXTS),
        voucher_number=draw(TEXTS),
        counterparty_bank_code=draw(st.just("") | BRANCH_CODES),
        memo=draw(TEXTS),
        reversal=draw(st.booleans()),
        item_number=draw(TEXTS),
        book_number=draw(TEXTS),
    )


@st.composite
def statement_files(draw: st.DrawFn) -> StatementFile:
    count = draw(st.integers(min_value=0, max_value=5))
    return StatementFile(tuple(draw(statement_lines(sequence)) for sequence in range(1, count + 1)))


FORMATS = {
    "debit": (debit_batches(), write_debit_batch, parse_debit_batch, write_debit_batch_csv, parse_debit_batch_csv),
    "result": (result_files(), write_result_file, parse_result_file, write_result_file_csv, parse_result_file_csv),
    "split": (split_files(), write_split_file, parse_split_file, write_split_file_csv, parse_split_file_csv),
    "statement": (statement_files(), write_statement, parse_statement, write_statement_csv, parse_statement_csv),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", FORMATS)
def test_national_form_round_trips(name: str, encoding: str) -> None:
    strategy, write, parse, _, _ = FORMATS[name]

    @settings(max_examples=60, deadline=None)
    @given(strategy)
    def check(file: object) -> None:
        data = write(file, encoding)
        assert parse(data, encoding) == file
        assert write(parse(data, encoding), encoding) == data

    check()


@pytest.mark.parametrize("name", FORMATS)
def test_csv_form_round_trips(name: str) -> None:
    strategy, _, _, write_csv, parse_csv = FORMATS[name]

    @settings(max_examples=60, deadline=None)
    @given(strategy)
    def check(file: object) -> None:
        data = write_csv(file)
        assert parse_csv(data) == file
        assert write_csv(parse_csv(data)) == data

    check()


@st.composite
def amount_texts(draw: st.DrawFn) -> tuple[int, str]:
    """An amount in fen and one of the texts a bank may write for it (5, 5.0, 5.00, 05.00)."""
    fen = draw(FEN)
    yuan, cents = divmod(fen, 100)
    forms = [f"{yuan}.{cents:02d}"]
    if cents == 0:
        forms += [str(yuan), f"{yuan}.0"]
    elif cents % 10 == 0:
        forms.append(f"{yuan}.{cents // 10}")
    text = draw(st.sampled_from(forms))
    return fen, ("0" + text if draw(st.booleans()) else text)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(amount_texts(), NAMES, st.booleans()), min_size=1, max_size=5),
    st.sampled_from(ENCODINGS),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
)
def test_result_bytes_round_trip_as_the_bank_wrote_them(
    details: list[tuple[tuple[int, str], str, bool]], encoding: str, newline: str, end: bool, final: bool
) -> None:
    lines = []
    for sequence, ((_, text), name, ok) in enumerate(details, start=1):
        code = "00000" if ok else "E0001"
        lines.append(f"{sequence:02d}|156|1|{text}|6217{sequence}|{name}||3100|{CENTRE}||{code}||20250215|5002{sequence}|||")
    success = [fen for (fen, _), _, ok in details if ok]
    failure = [fen for (fen, _), _, ok in details if not ok]
    total = sum(fen for (fen, _), _, _ in details)
    counts = f"{len(details)}|{yuan(total)}|{len(success)}|{yuan(sum(success))}|{len(failure)}|{yuan(sum(failure))}"
    text = newline.join([f"$20250215|3100|B1|1|1|156|1|{counts}|备注|", *lines, *(["#END"] if end else [])])
    data = (text + (newline if final else "")).encode(encoding)
    assert write_result_file(parse_result_file(data, encoding), encoding) == data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(amount_texts(), NAMES), min_size=1, max_size=5), st.sampled_from(ENCODINGS))
def test_debit_and_statement_bytes_round_trip_as_written(
    details: list[tuple[tuple[int, str], str]], encoding: str
) -> None:
    total = sum(fen for (fen, _), _ in details)
    debit_lines = [f"H@|$1@|$3100@|${CENTRE}@|$0{len(details)}@|${yuan(total)}@|$PJ1@|$"]
    statement_lines = []
    for sequence, ((_, text), name) in enumerate(details, start=1):
        debit_lines.append(f"{sequence}@|${text}@|$6217{sequence}@|${name}@|$0@|$20250215000000{sequence} 扣划@|$")
        statement_lines.append(
            f"{sequence}|3100|H{sequence}|T|6217|{name}|-{text}|20250215|101010||31||156|1|{text}||||||N|||"
        )
    for lines, parse, write in (
        (debit_lines, parse_debit_batch, write_debit_batch),
        (statement_lines, parse_statement, write_statement),
    ):
        data = "\n".join(lines).encode(encoding)
        assert write(parse(data, encoding), encoding) == data


def test_changed_amount_is_written_canonically() -> None:
    data = gbk(
        "$20250215|310000|B1|1|1|156|1|1|5|1|5|0|0||",
        f"1|156|1|5|6217000000000000000|张三||3100000001|{CENTRE}||00000||20250215|50026033|||",
    )
    result = parse_result_file(data)
    line = replace(result.lines[0], amount=Money("6"))
    summary = replace(result.summary, total_amount=Money("6"), success_amount=Money("6"))
    written = write_result_file(ResultFile(summary, (line,))).decode("GBK")
    assert "|1|156|1|6.00|" in "|" + written.split("\n")[1]
    assert written.startswith("$20250215|310000|B1|1|1|156|1|1|6.00|1|6.00|0|0|")


# -- refusals: each problem with line number and field ---------------------------------------------
def result_data(*details: str, summary: str = EXAMPLE_SUMMARY) -> bytes:
    return gbk(summary, *details)


def test_utf8_bytes_declared_gbk_are_refused_with_line_and_field() -> None:
    data = "\n".join([EXAMPLE_HEADER, EXAMPLE_DEBIT]).encode("utf-8")
    for encoding in ENCODINGS:
        with pytest.raises(BankFileError) as error:
            parse_debit_batch(data, encoding)
        assert problems_of(error) == [(1, "account_name")]
        assert "UTF-8" in error.value.problems[0].rule


def test_utf8_bytes_that_do_not_decode_as_gbk_are_refused() -> None:
    data = result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE).replace("余额不足".encode("GBK"), "余额不足".encode("utf-8"))
    with pytest.raises(BankFileError) as error:
        parse_result_file(data)
    assert problems_of(error) == [(3, "response_message")]


def test_invalid_bytes_are_refused_with_line_and_field() -> None:
    data = gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT).replace("张三".encode("GBK"), b"\xff\xfe")
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(data)
    assert problems_of(error) == [(2, "payer_name")]
    assert "not valid GBK" in error.value.problems[0].rule


def test_invalid_utf8_in_csv_is_refused_with_line_and_field() -> None:
    data = write_debit_batch_csv(parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT)))
    with pytest.raises(BankFileError) as error:
        parse_debit_batch_csv(data.replace("张三".encode("utf-8"), b"\xd5\xc5"))
    assert problems_of(error) == [(3, "payer_name")]


def test_wrong_field_count_is_refused() -> None:
    short_line = EXAMPLE_SUCCESS.removesuffix("|")
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(short_line, EXAMPLE_FAILURE))
    assert problems_of(error) == [(2, "line")]
    assert "wrong field count: 15, expected 16" in error.value.problems[0].rule


def test_record_not_ending_with_its_separator_is_refused() -> None:
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT.removesuffix("@|$")))
    assert problems_of(error) == [(2, "line")]


@pytest.mark.parametrize("amount", ["12.345", "abc", "", "-5.00", "1,000.00", "5.", "0.00"])
def test_bad_debit_amount_is_refused(amount: str) -> None:
    line = EXAMPLE_DEBIT.replace("2067.79", amount, 1)
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_HEADER, line))
    assert (2, "amount") in problems_of(error)


@pytest.mark.parametrize("amount", ["12.345", "abc"])
def test_bad_result_amount_is_refused(amount: str) -> None:
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE.replace("1391.79", amount)))
    assert problems_of(error) == [(3, "amount")]


@pytest.mark.parametrize("day", ["20250230", "2025021", "2025-02-15", "abcdefgh"])
def test_bad_date_is_refused(day: str) -> None:
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE.replace("|20250215|", f"|{day}|")))
    assert problems_of(error) == [(3, "host_on")]
    with pytest.raises(BankFileError) as error:
        parse_statement(gbk(EXAMPLE_STATEMENT.replace("|20250215|", f"|{day}|")))
    assert problems_of(error) == [(1, "transaction_on")]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    bad_amount = EXAMPLE_SUCCESS.replace("2067.79", "12.345")
    bad_date = EXAMPLE_FAILURE.replace("|20250215|", "|20251301|")
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(bad_amount, bad_date))
    assert problems_of(error) == [(2, "amount"), (3, "host_on")]
    assert "line 2, amount (金额)" in str(error.value)


def test_summary_disagreeing_with_detail_lines_is_refused() -> None:
    summary = EXAMPLE_SUMMARY.replace("|2|3459.58|1|2067.79|1|1391.79|", "|2|3459.58|2|3459.58|0|0.00|")
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE, summary=summary))
    totals = ["success_count", "success_amount", "failure_count", "failure_amount"]
    assert problems_of(error) == [(1, name) for name in totals]
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS))
    assert (1, "total_count") in problems_of(error)


def test_debit_header_disagreeing_with_lines_is_refused() -> None:
    header = EXAMPLE_HEADER.replace("@|$1@|$2067.79@|$", "@|$2@|$2067.78@|$")
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(header, EXAMPLE_DEBIT))
    assert problems_of(error) == [(1, "total_count"), (1, "total_amount")]


def test_debit_lines_must_fit_the_file_type_and_run_from_one() -> None:
    header = f"H@|$1@|$3100000001@|${CENTRE}@|$2@|$3459.58@|$PJ1@|$"
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(header, EXAMPLE_DEBIT, EXAMPLE_OTHER_BANK))
    assert problems_of(error) == [(3, "line")]
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT.replace("1@|$", "2@|$", 1)))
    assert problems_of(error) == [(2, "sequence")]


def test_debit_header_when_a_file_carries_it_is_its_first_line() -> None:
    """Real BDC105 files have no header line (BANK-FORMATS.md); one that has it has it first, once."""
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_DEBIT, EXAMPLE_HEADER))
    assert problems_of(error) == [(2, "header")]
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_DEBIT, EXAMPLE_DEBIT))
    assert problems_of(error) == [(2, "sequence")]
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_HEADER))
    assert problems_of(error) == [(2, "line")]
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(gbk(EXAMPLE_HEADER.replace("H@|$", "X@|$")))
    assert problems_of(error) == [(1, "record_tag")]


# -- BDC105 as banks exchange it: no header line, empty 付方地址 and 多方协议号 ------------------------------
REAL_OTHER_BANK = (
    "2@|$1391.79@|$6228480000000000001@|$李四@|$103100000019@|$103100000027@|$@|$@|$1@|$"
    "202502150000002 公积金贷款扣划@|$"
)
REQUEST = f"3@|$3100000001@|${CENTRE}@|$2@|$3459.58@|$PJ202502150001@|$"


def test_a_real_batch_without_header_line_and_with_empty_address_and_agreement_is_read() -> None:
    data = gbk(EXAMPLE_DEBIT, REAL_OTHER_BANK) + b"\n"
    batch = parse_debit_batch(data)
    assert batch.header is None and not batch.layout.header_line
    same, other = batch.records
    assert isinstance(same, SameBankDebit) and isinstance(other, OtherBankDebit)
    assert (other.payer_address, other.agreement_number, other.serial) == ("", "", "202502150000002")
    assert write_debit_batch(replace(batch, header=parse_debit_control(gbk(REQUEST)))) == data


def test_a_batch_without_header_line_is_checked_against_its_request() -> None:
    data = gbk(EXAMPLE_DEBIT, REAL_OTHER_BANK)
    batch = parse_debit_batch(data, request=parse_debit_control(gbk(REQUEST)))
    assert batch.header is not None and batch.header.project_number == "PJ202502150001"
    assert (batch.header.total_count, batch.header.total_amount) == (2, Money("3459.58"))
    wrong_total = REQUEST.replace("3459.58", "3459.59")
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(data, request=parse_debit_control(gbk(wrong_total)))
    assert problems_of(error) == [(0, "total_amount")]
    assert "batch request" in str(error.value)
    same_bank_only = REQUEST.replace("3@|$", "1@|$", 1)
    with pytest.raises(BankFileError) as error:
        parse_debit_batch(data, request=parse_debit_control(gbk(same_bank_only)))
    assert problems_of(error) == [(2, "line")]
    with pytest.raises(BankFileError) as error:  # a header line that contradicts the request
        parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT), request=parse_debit_control(gbk(REQUEST)))
    assert (1, "header") in problems_of(error)


def test_the_ledger_writes_its_batches_without_header_line_and_the_header_in_a_control_record() -> None:
    batch = DebitBatch.build(account_number="3100000001", account_name=CENTRE, project_number="PJ202502150001",
                             records=parse_debit_batch(gbk(EXAMPLE_DEBIT, REAL_OTHER_BANK)).records,
                             header_line=False)
    data, control = write_debit_batch(batch), write_debit_control(batch)
    assert data == gbk(EXAMPLE_DEBIT, REAL_OTHER_BANK)
    assert control == gbk(REQUEST) + b"\n"
    assert parse_debit_batch(data, request=parse_debit_control(control)) == batch
    with pytest.raises(BankFileError):  # the totals are checked even though they are not a line of the file
        write_debit_batch(replace(batch, header=replace(batch.header, total_count=3)))
    with pytest.raises(BankFileError):
        write_debit_batch(replace(batch, header=None))
    assert parse_debit_batch_csv(write_debit_batch_csv(batch)) == batch  # the CSV form keeps its header row


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_batches_without_header_line_round_trip_with_their_control_record(encoding: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(debit_batches())
    def check(batch: DebitBatch) -> None:
        bank_form = replace(batch, layout=replace(batch.layout, header_line=False))
        data, control = write_debit_batch(bank_form, encoding), write_debit_control(bank_form, encoding)
        assert not data.startswith(b"H@|$")
        parsed = parse_debit_batch(data, encoding, request=parse_debit_control(control, encoding))
        assert parsed == batch
        assert write_debit_batch(parsed, encoding) == data

    check()


def test_result_summary_is_required_first() -> None:
    with pytest.raises(BankFileError) as error:
        parse_result_file(gbk(EXAMPLE_SUCCESS))
    assert problems_of(error) == [(1, "batch_on")]
    with pytest.raises(BankFileError) as error:
        parse_result_file(b"")
    assert problems_of(error) == [(1, "summary")]


def test_malformed_csv_rows_are_refused_with_line_and_field() -> None:
    data = write_debit_batch_csv(parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT))).decode("utf-8")
    header_row, batch_row, debit_row = data.split("\n")
    cases = {
        "\n".join([header_row.replace("memo", "note"), batch_row, debit_row]): [(1, "header")],
        "\n".join([header_row, batch_row, debit_row.replace("same_bank", "same")]): [(3, "record_kind")],
        "\n".join([header_row, batch_row, debit_row.replace(",0,", ",0,extra,")]): [(3, "line")],
        "\n".join([header_row, batch_row, debit_row.replace("2067.79", "12.345")]): [(3, "amount")],
        "\n".join([header_row, batch_row.replace("header,1", "header,4"), debit_row]): [(2, "file_type")],
        "\n".join([header_row, batch_row, debit_row.replace("张三,,,,,0", "张三,,,X,,0")]): [(3, "payer_address")],
    }
    for text, expected in cases.items():
        with pytest.raises(BankFileError) as error:
            parse_debit_batch_csv(text.encode("utf-8"))
        assert problems_of(error) == expected, text


def test_duplicate_result_sequence_is_refused() -> None:
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE.replace("2|", "1|", 1)))
    assert (3, "sequence") in problems_of(error)


def test_end_marker_only_at_the_end() -> None:
    with pytest.raises(BankFileError) as error:
        parse_result_file(result_data(EXAMPLE_SUCCESS, "#END", EXAMPLE_FAILURE))
    assert (3, "line") in problems_of(error)


def test_split_parts_must_add_up() -> None:
    with pytest.raises(BankFileError) as error:
        parse_split_file(gbk(EXAMPLE_SPLIT.replace("@|$367.79@|$", "@|$367.80@|$")))
    assert problems_of(error) == [(1, "repayment")]


def test_statement_reversal_flag_is_y_n_or_empty() -> None:
    with pytest.raises(BankFileError) as error:
        parse_statement(gbk(EXAMPLE_STATEMENT.replace("|0001|01|", "X|0001|01|")))
    assert problems_of(error) == [(1, "reversal")]


def test_card_failing_luhn_is_still_parsed() -> None:
    batch = parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT))
    assert not is_valid_card(batch.records[0].payer_account)


# -- writing: unencodable text and separators -----------------------------------------------------
def example_batch(name: str) -> DebitBatch:
    debit = SameBankDebit(1, Money("2067.79"), "6217000000000000000", name, False, "202502150000001 公积金贷款扣划")
    return DebitBatch.build(account_number="3100000001", account_name=CENTRE, project_number="PJ1", records=[debit])


def test_unencodable_name_is_reported_never_replaced() -> None:
    with pytest.raises(UnencodableTextError) as error:
        write_debit_batch(example_batch("张𠀀"), "GBK")
    assert problems_of(error) == [(2, "payer_name")]
    assert "GBK" in error.value.problems[0].rule


def test_gb18030_encodes_what_gbk_cannot() -> None:
    data = write_debit_batch(example_batch("张𠀀"), "GB18030")
    assert parse_debit_batch(data, "GB18030").records[0].payer_name == "张𠀀"
    with pytest.raises(BankFileError):
        parse_debit_batch(data, "GBK")


def test_a_field_holding_the_separator_is_refused() -> None:
    with pytest.raises(BankFileError) as error:
        write_debit_batch(example_batch("张@|$三"))
    assert problems_of(error) == [(2, "payer_name")]
    with pytest.raises(BankFileError) as error:
        write_debit_batch_csv(example_batch("张\n三"))
    assert problems_of(error) == [(3, "payer_name")]


def test_writing_checks_values_and_totals() -> None:
    batch = example_batch("张三")
    with pytest.raises(BankFileError) as error:
        write_debit_batch(replace(batch, records=(replace(batch.records[0], amount=Money("0")),)))
    assert (2, "amount") in problems_of(error)
    with pytest.raises(BankFileError) as error:
        write_debit_batch(replace(batch, records=(replace(batch.records[0], amount="2067.79"),)))
    assert problems_of(error) == [(2, "amount")]
    with pytest.raises(BankFileError) as error:
        write_debit_batch(replace(batch, header=replace(batch.header, total_count=2)))
    assert problems_of(error) == [(1, "total_count")]


def test_only_gbk_and_gb18030() -> None:
    with pytest.raises(UnsupportedEncodingError):
        parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT), "utf-8")
    assert parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT), "gbk").header.total_count == 1


def test_mixed_batch_type_is_inferred() -> None:
    same = example_batch("张三").records[0]
    other = OtherBankDebit(2, Money("5"), "62284800", "李四", "103100000019", "103100000027", "", "XY1", True, "")
    batch = DebitBatch.build(account_number="3100", account_name=CENTRE, project_number="PJ1", records=[same, other])
    assert batch.header.file_type is DebitFileType.MIXED
    assert batch.header.total_amount == Money("2072.79")


# -- serials and cards ---------------------------------------------------------------------------
def test_serial_is_day_and_seven_digit_sequence() -> None:
    assert format_serial(date(2025, 2, 15), 1) == "202502150000001"
    assert parse_serial("202502150000001") == Serial(date(2025, 2, 15), 1)
    assert str(Serial(date(2025, 2, 15), 9_999_999)) == "202502159999999"


BAD_SERIALS = ["20250215000001", "2025021500000011", "202502300000001", "202502150000000", "2025021500000a1"]


@pytest.mark.parametrize("text", BAD_SERIALS)
def test_bad_serials_are_refused(text: str) -> None:
    with pytest.raises(SerialNumberError):
        parse_serial(text)


@pytest.mark.parametrize("sequence", [0, 10_000_000, True])
def test_bad_sequences_are_refused(sequence: int) -> None:
    with pytest.raises(SerialNumberError):
        format_serial(date(2025, 2, 15), sequence)


def test_serial_is_found_in_memo() -> None:
    assert find_serial("202502150000001 公积金贷款扣划") == "202502150000001"
    assert find_serial("扣划202502150000001") == "202502150000001"
    assert find_serial("卡号6217000000000000000") is None
    assert find_serial("") is None
    assert find_serials("202502150000001 202502150000001") == ("202502150000001",)
    with pytest.raises(AmbiguousSerialError):
        find_serial("202502150000001 / 202502150000002")


@given(DATES, st.integers(min_value=1, max_value=9_999_999))
def test_serial_round_trips(day: date, sequence: int) -> None:
    assert parse_serial(format_serial(day, sequence)) == Serial(day, sequence)


def test_validate_card_uses_luhn() -> None:
    assert validate_card("6217000000000000004") == "6217000000000000004"
    for bad in ["6217000000000000000", "62170000", "6217 0000 0000 0000 004", ""]:
        with pytest.raises(CardNumberError):
            validate_card(bad)


# -- adapters and transport ----------------------------------------------------------------------
@pytest.mark.parametrize("adapter", [NationalFileAdapter("GBK"), NationalFileAdapter("GB18030"), CsvAdapter()])
def test_adapters_speak_their_forms(adapter: BankAdapter) -> None:
    batch = parse_debit_batch(gbk(EXAMPLE_HEADER, EXAMPLE_DEBIT))
    result = parse_result_file(result_data(EXAMPLE_SUCCESS, EXAMPLE_FAILURE))
    statement = parse_statement(gbk(EXAMPLE_STATEMENT))
    split = parse_split_file(gbk(EXAMPLE_SPLIT))
    if isinstance(adapter, CsvAdapter):
        assert parse_debit_batch_csv(adapter.write_debit_batch(batch)) == batch
        assert parse_split_file_csv(adapter.write_split(split)) == split
        assert adapter.read_debit_results(write_result_file_csv(result)) == result
        assert adapter.read_statement(write_statement_csv(statement)) == statement
    else:
        encoding = adapter.encoding
        assert parse_debit_batch(adapter.write_debit_batch(batch), encoding) == batch
        assert parse_split_file(adapter.write_split(split), encoding) == split
        assert adapter.read_debit_results(write_result_file(result, encoding)) == result
        assert adapter.read_statement(write_statement(statement, encoding)) == statement


def test_national_adapter_refuses_other_encodings() -> None:
    with pytest.raises(UnsupportedEncodingError):
        NationalFileAdapter("UTF-8")


def test_folder_transport_sends_once_and_picks_up(tmp_path: Path) -> None:
    transport = FolderTransport(tmp_path / "out", tmp_path / "in")
    sent = transport.send("BDC105_20250215.txt", b"abc")
    assert sent.read_bytes() == b"abc"
    assert transport.send("BDC105_20250215.txt", b"abc") == sent
    with pytest.raises(OutgoingFileConflictError):
        transport.send("BDC105_20250215.txt", b"abd")
    with pytest.raises(FileNameError):
        transport.send("../escape.txt", b"x")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["BDC105_20250215.txt"]

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "BDC108_2.txt").write_bytes(b"2")
    (tmp_path / "in" / "BDC108_1.txt").write_bytes(b"1")
    (tmp_path / "in" / ".partial").write_bytes(b"?")
    pending = transport.pending()
    assert [path.name for path in pending] == ["BDC108_1.txt", "BDC108_2.txt"]
    assert transport.pick_up(pending[0]) == b"1"
    moved = transport.mark_processed(pending[0])
    assert moved.parent.name == "processed" and moved.read_bytes() == b"1"
    assert [path.name for path in transport.pending()] == ["BDC108_2.txt"]
    with pytest.raises(FileNameError):
        transport.pick_up(tmp_path / "out" / "BDC105_20250215.txt")
