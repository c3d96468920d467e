"""The national settlement file layouts (BANK-FORMATS.md) and their CSV forms, read and written exactly.

Files: BDC105 debit batch (centre -> bank, ``@|$``), BDC108 result file (bank -> centre, ``|``), BDC106
principal/interest split (``@|$``), SBDC100/BDC113 statement lines (``|``). Each has frozen dataclasses
for its records and file, ``parse_*`` / ``write_*`` for the national form in GBK or GB18030 (chosen per
call) and ``parse_*_csv`` / ``write_*_csv`` for the CSV form (UTF-8, header row of English names).

Rules every reader and writer keeps:

- A file is checked whole before anything is returned (BNK-3): encoding, field counts, amounts (0-2
  decimals, never floats), dates (YYYYMMDD), and the whole-file rules (header/summary totals against the
  lines, 序号 order). Every problem is collected with line number, field and rule, and one
  :class:`BankFileError` carries them all; nothing is returned partially.
- Text that cannot be encoded in the bank's encoding is reported (:class:`UnencodableTextError`, with
  line and field), never replaced (BNK-1). ``𠀀`` fails in GBK and is fine in GB18030.
- Parsing then writing reproduces the bytes exactly: original texts such as amount ``5`` (vs ``5.00``)
  are kept in each record's ``raw_texts``, and the file's line ending, final newline and ``#END`` in its
  ``layout``. Both are left out of equality.
- Card numbers are not checked against Luhn while parsing; :func:`validate_card` is the caller's check.

BDC105 header: real batches carry no header line (the header fields travel with the batch request); the
ledger writes its batches that way, the header in a one-line control record beside the file
(``write_debit_control``, ``parse_debit_batch(data, request=parse_debit_control(control))``), and still
reads the older form whose first line is ``H@|$文件类型@|$收款账号@|$收款户名@|$总笔数@|$总金额@|$批次项目编号@|$``
(see ``bank_adapters.formats.debit``).
"""

from .csv_form import RECORD_KIND_COLUMN
from .debit import (
    DebitBatch,
    DebitBatchHeader,
    DebitFileType,
    OtherBankDebit,
    SameBankDebit,
    parse_debit_batch,
    parse_debit_batch_csv,
    parse_debit_control,
    write_debit_batch,
    write_debit_batch_csv,
    write_debit_control,
)
from .fields import TextLayout
from .problems import (
    ENCODINGS,
    FILE_BYTES_MAX,
    FILE_LINES_MAX,
    BankFileError,
    Problem,
    UnencodableTextError,
    UnsupportedEncodingError,
    normalize_encoding,
)
from .results import (
    SUCCESS_CODE,
    ResultFile,
    ResultLine,
    ResultSummary,
    parse_result_file,
    parse_result_file_csv,
    write_result_file,
    write_result_file_csv,
)
from .serials import (
    AmbiguousSerialError,
    CardNumberError,
    Serial,
    SerialNumberError,
    find_serial,
    find_serials,
    format_serial,
    is_valid_card,
    parse_serial,
    validate_card,
)
from .split import (
    SplitFile,
    SplitRecord,
    parse_split_file,
    parse_split_file_csv,
    write_split_file,
    write_split_file_csv,
)
from .statement import (
    StatementFile,
    StatementLine,
    parse_statement,
    parse_statement_csv,
    write_statement,
    write_statement_csv,
)

__all__ = [
    "ENCODINGS",
    "FILE_BYTES_MAX",
    "FILE_LINES_MAX",
    "RECORD_KIND_COLUMN",
    "SUCCESS_CODE",
    "AmbiguousSerialError",
    "BankFileError",
    "CardNumberError",
    "DebitBatch",
    "DebitBatchHeader",
    "DebitFileType",
    "OtherBankDebit",
    "Problem",
    "ResultFile",
    "ResultLine",
    "ResultSummary",
    "SameBankDebit",
    "Serial",
    "SerialNumberError",
    "SplitFile",
    "SplitRecord",
    "StatementFile",
    "StatementLine",
    "TextLayout",
    "UnencodableTextError",
    "UnsupportedEncodingError",
    "find_serial",
    "find_serials",
    "format_serial",
    "is_valid_card",
    "normalize_encoding",
    "parse_debit_batch",
    "parse_debit_batch_csv",
    "parse_debit_control",
    "parse_result_file",
    "parse_result_file_csv",
    "parse_serial",
    "parse_split_file",
    "parse_split_file_csv",
    "parse_statement",
    "parse_statement_csv",
    "validate_card",
    "write_debit_batch",
    "write_debit_batch_csv",
    "write_debit_control",
    "write_result_file",
    "write_result_file_csv",
    "write_split_file",
    "write_split_file_csv",
    "write_statement",
    "write_statement_csv",
]
