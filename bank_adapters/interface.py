"""The one small port through which the ledger talks to a bank (BNK-1), its two file adapters, and a folder transport.

:class:`BankAdapter` turns the ledger's outgoing files (debit batches and the control record that carries a
batch's header, principal/interest splits) into bytes and the bank's incoming bytes (debit results, statements) into parsed files. It knows nothing of
aggregates: matching results to instructions and posting statement lines are the ledger's business
(BNK-4, BNK-5). :class:`NationalFileAdapter` speaks the national delimited files in the bank's encoding
(GBK or GB18030, per bank); :class:`CsvAdapter` speaks their CSV forms. :class:`FolderTransport` moves
the bytes: it drops outgoing files into a folder and picks up incoming ones, with plain file I/O.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from .formats import (
    FILE_BYTES_MAX,
    DebitBatch,
    DebitBatchHeader,
    ResultFile,
    SplitFile,
    StatementFile,
    normalize_encoding,
    parse_debit_batch,
    parse_debit_batch_csv,
    parse_result_file,
    parse_result_file_csv,
    parse_statement,
    parse_statement_csv,
    write_debit_batch,
    write_debit_batch_csv,
    write_debit_control,
    write_split_file,
    write_split_file_csv,
)

PENDING_FILES_MAX = 10_000
TEMPORARY_PREFIX = "."
PROCESSED_FOLDER_NAME = "processed"


class BankAdapter(ABC):
    """What the ledger needs from a bank's file format (BNK-1)."""

    @abstractmethod
    def write_debit_batch(self, batch: DebitBatch) -> bytes:
        """BDC105: the bytes of a loan repayment debit batch."""

    @abstractmethod
    def write_debit_control(self, batch: DebitBatch) -> bytes | None:
        """BDC105: the control record carrying the batch's header beside the file, or None when the file
        carries its header itself."""

    @abstractmethod
    def read_debit_batch(self, data: bytes, request: DebitBatchHeader | None = None) -> DebitBatch:
        """BDC105 as banks exchange it (no header line; ``request`` the header that travelled with it)."""

    @abstractmethod
    def read_debit_results(self, data: bytes) -> ResultFile:
        """BDC108: the bank's results for a debit batch, checked whole (BNK-3)."""

    @abstractmethod
    def read_statement(self, data: bytes) -> StatementFile:
        """SBDC100/BDC113: movements on the centre's bank accounts, checked whole (BNK-3)."""

    @abstractmethod
    def write_split(self, split: SplitFile) -> bytes:
        """BDC106: the bytes of a principal/interest split."""


class NationalFileAdapter(BankAdapter):
    """The national delimited files (``@|$`` out, ``|`` in) in the bank's encoding, GBK or GB18030."""

    def __init__(self, encoding: str = "GBK"):
        self.encoding = normalize_encoding(encoding)

    def write_debit_batch(self, batch: DebitBatch) -> bytes:
        return write_debit_batch(batch, self.encoding)

    def write_debit_control(self, batch: DebitBatch) -> bytes | None:
        return write_debit_control(batch, self.encoding)

    def read_debit_batch(self, data: bytes, request: DebitBatchHeader | None = None) -> DebitBatch:
        return parse_debit_batch(data, self.encoding, request)

    def read_debit_results(self, data: bytes) -> ResultFile:
        return parse_result_file(data, self.encoding)

    def read_statement(self, data: bytes) -> StatementFile:
        return parse_statement(data, self.encoding)

    def write_split(self, split: SplitFile) -> bytes:
        return write_split_file(split, self.encoding)

    def __repr__(self) -> str:
        return f"NationalFileAdapter(encoding={self.encoding!r})"


class CsvAdapter(BankAdapter):
    """The CSV forms (UTF-8, header row of English field names)."""

    def write_debit_batch(self, batch: DebitBatch) -> bytes:
        return write_debit_batch_csv(batch)

    def write_debit_control(self, batch: DebitBatch) -> bytes | None:
        return None  # the CSV form carries its header row

    def read_debit_batch(self, data: bytes, request: DebitBatchHeader | None = None) -> DebitBatch:
        return parse_debit_batch_csv(data, request)

    def read_debit_results(self, data: bytes) -> ResultFile:
        return parse_result_file_csv(data)

    def read_statement(self, data: bytes) -> StatementFile:
        return parse_statement_csv(data)

    def write_split(self, split: SplitFile) -> bytes:
        return write_split_file_csv(split)


class FileNameError(ValueError):
    """A transported file is named by a plain file name: no folders, not hidden, not empty."""


class OutgoingFileConflictError(FileExistsError):
    """A file once sent is never overwritten: the same name with other bytes is refused."""


class FileTooLargeError(ValueError):
    """Files above FILE_BYTES_MAX are neither sent nor picked up."""


class FolderTransport:
    """Drops outgoing files into ``outgoing_folder``; picks up incoming files from ``incoming_folder``.

    Sending is atomic and exactly once: the bytes are written to a hidden temporary file and linked to
    their name, which fails if the name exists; re-sending the same bytes under the same name is a no-op.
    Incoming files whose names start with ``.`` are still being written and are left alone. A picked-up
    file is moved to ``processed_folder`` (default ``incoming_folder/processed``) once applied.
    """

    def __init__(self, outgoing_folder: Path, incoming_folder: Path, processed_folder: Path | None = None):
        self.outgoing_folder = Path(outgoing_folder)
        self.incoming_folder = Path(incoming_folder)
        default_processed_folder = self.incoming_folder / PROCESSED_FOLDER_NAME
        self.processed_folder = Path(processed_folder) if processed_folder else default_processed_folder

    def send(self, file_name: str, data: bytes) -> Path:
        """Write ``data`` as ``outgoing_folder/file_name``; the path written (or already there)."""
        _check_file_name(file_name)
        _check_size(len(data), file_name)
        self.outgoing_folder.mkdir(parents=True, exist_ok=True)
        target = self.outgoing_folder / file_name
        if target.exists():
            return _same_or_conflict(target, data)
        temporary = self.outgoing_folder / f"{TEMPORARY_PREFIX}{file_name}.{os.getpid()}.tmp"
        try:
            _write_synced(temporary, data)
            os.link(temporary, target)
        except FileExistsError:
            return _same_or_conflict(target, data)
        finally:
            temporary.unlink(missing_ok=True)
        return target

    def pending(self) -> tuple[Path, ...]:
        """Incoming files waiting, by name (at most PENDING_FILES_MAX)."""
        if not self.incoming_folder.is_dir():
            return ()
        paths = sorted(
            path for path in self.incoming_folder.iterdir()
            if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX)
        )
        return tuple(paths[:PENDING_FILES_MAX])

    def pick_up(self, path: Path) -> bytes:
        """The bytes of one incoming file (it stays in place until :meth:`mark_processed`)."""
        path = self._incoming(path)
        _check_size(path.stat().st_size, path.name)
        return path.read_bytes()

    def mark_processed(self, path: Path) -> Path:
        """Move an applied incoming file into the processed folder; its new path."""
        path = self._incoming(path)
        self.processed_folder.mkdir(parents=True, exist_ok=True)
        target = self.processed_folder / path.name
        if target.exists():
            raise OutgoingFileConflictError(f"{target} is already processed; rename the incoming file")
        os.replace(path, target)
        return target

    def _incoming(self, path: Path) -> Path:
        path = Path(path)
        _check_file_name(path.name)
        if path.parent.resolve() != self.incoming_folder.resolve():
            raise FileNameError(f"{path} is not in the incoming folder {self.incoming_folder}")
        return path


def _check_file_name(file_name: str) -> None:
    if not file_name or file_name in (".", "..") or file_name.startswith(TEMPORARY_PREFIX):
        raise FileNameError(f"not a plain, visible file name: {file_name!r}")
    if "/" in file_name or "\\" in file_name or "\0" in file_name:
        raise FileNameError(f"a file name may not name a folder: {file_name!r}")


def _check_size(size_bytes: int, file_name: str) -> None:
    if size_bytes > FILE_BYTES_MAX:
        raise FileTooLargeError(f"{file_name}: {size_bytes} bytes is above FILE_BYTES_MAX = {FILE_BYTES_MAX}")


def _same_or_conflict(target: Path, data: bytes) -> Path:
    if target.read_bytes() == data:
        return target
    raise OutgoingFileConflictError(f"{target} was already sent with other content")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
