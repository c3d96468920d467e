"""Read models (ADR 0008): rebuild determinism, restart safety, MNY-4 answers, on SQLite and PostgreSQL.

A short centre history — remittances, a withdrawal and its payout, a reversal (冲正), a
seal, a freeze, a back-dated receipt — is projected; the read side must then answer as the
events do (``Ledger.balance``, ``Ledger.history``, ``Ledger.trial_balance``) as of any value
date and as known at any recorded time, rebuild to the same digest, and survive a crash
between pages without losing or repeating an event.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from ledger.application import CHINA_TZ
from ledger.money import Money
from ledger.projections import Projector, ReadModel, tables
from ledger.projections.batch import Batch, ProjectionConflictError

pytestmark = pytest.mark.storage

JUNE_8, JULY_8, JULY_20, AUG_8, AUG_10, AUG_15, SEPT_1, SEPT_10 = (
    date(2024, 6, 8), date(2024, 7, 8), date(2024, 7, 20), date(2024, 8, 8), date(2024, 8, 10),
    date(2024, 8, 15), date(2024, 9, 1), date(2024, 9, 10))


def at(day: date, hour: int = 23) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=CHINA_TZ)


def build_history(fund: Any) -> dict[str, Any]:
    """Two members of one employer over four months; returns what the tests look up."""
    fund.on(date(2024, 6, 5))
    employer = fund.employer()
    (id_a, account_a), (id_b, account_b) = fund.member(employer), fund.member(employer)
    for day, period in ((JUNE_8, "2024-06"), (JULY_8, "2024-07"), (AUG_8, "2024-08")):
        fund.on(day)
        fund.remit(employer, period, [account_a, account_b])
    fund.on(JULY_20)
    withdrawal = fund.withdraw(account_a, "1000.00", value_date=JULY_20)
    fund.ledger.settle_payout(withdrawal["serial"], True, JULY_20, "ICBC/20240720/P1")
    fund.on(AUG_10)
    august_b = next(m[3] for m in fund.account(account_b).movements if m[0] == AUG_8)
    fund.ledger.reverse(account_b, august_b, AUG_10, "重复入账")
    fund.on(AUG_15)
    fund.ledger.seal(account_b, AUG_15)
    fund.ledger.freeze(account_a, "centre", "冻字1号", AUG_15, amount="100.00")
    fund.on(SEPT_10)  # recorded on 10 September, value-dated 1 September (MNY-4: back-dated)
    fund.remit(employer, "2024-09", [account_a], value_date=SEPT_1)
    return {"employer": employer, "a": account_a, "b": account_b, "id_a": id_a, "id_b": id_b,
            "withdrawal": withdrawal, "reversed_posting": august_b}


@pytest.fixture
def history(fund: Any) -> dict[str, Any]:
    return build_history(fund)


@pytest.fixture
def projector(fund: Any) -> Iterator[Projector]:
    made = Projector.for_ledger(fund.ledger, page_size=7)
    yield made
    made.close()


def count_rows(projector: Projector, table: Any) -> int:
    with projector.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)


# -- determinism and restart safety ---------------------------------------------------------------
def test_rebuild_of_the_same_events_gives_the_same_digest(fund, history, projector):
    first = projector.catch_up()
    assert first.position_to == fund.ledger.recorder.max_notification_id()
    assert first.pages > 3  # several pages of 7: the page boundaries are exercised
    before = projector.digest()
    rebuilt = projector.rebuild()
    assert rebuilt.events_read == first.events_read
    assert projector.digest() == before
    other = Projector.for_ledger(fund.ledger, page_size=5_000)  # another page size, same content
    try:
        other.rebuild()
        assert other.digest() == before
    finally:
        other.close()


def test_catch_up_twice_repeats_nothing(fund, history, projector):
    projector.catch_up()
    digest = projector.digest()
    again = projector.catch_up()
    assert (again.events_read, again.pages) == (0, 0)
    assert projector.digest() == digest
    assert projector.lag() == 0


def test_a_crash_between_pages_loses_and_repeats_nothing(fund, history, projector, monkeypatch):
    projector.catch_up(pages_max=2)
    assert projector.position() == 14
    flushes = {"count": 0}
    real_flush = Batch.flush

    def crash_on_second_page(self, name, before, after):
        flushes["count"] += 1
        real_flush(self, name, before, after)  # rows and position written, then the process dies
        if flushes["count"] == 2:
            raise KeyboardInterrupt("killed between writing a page and committing it")

    monkeypatch.setattr(Batch, "flush", crash_on_second_page)
    with pytest.raises(KeyboardInterrupt):
        projector.catch_up()
    assert projector.position() == 21  # the first page of this run committed, the second did not
    lines = tables.account_lines.c
    with projector.engine.connect() as connection:
        beyond = connection.execute(select(func.count()).where(lines.position > 21)).scalar()
    assert beyond == 0
    monkeypatch.setattr(Batch, "flush", real_flush)
    restarted = Projector.for_ledger(fund.ledger, page_size=7)
    try:
        restarted.catch_up()
        resumed = restarted.digest()
        restarted.rebuild()
        assert restarted.digest() == resumed
    finally:
        restarted.close()


def test_two_projectors_on_one_page_one_rolls_back(fund, history, projector, monkeypatch):
    rival = Projector.for_ledger(fund.ledger, page_size=7)
    try:
        rival.catch_up()
        digest = rival.digest()
        monkeypatch.setattr(projector, "position", lambda: 0)  # it read the position before the rival wrote
        with pytest.raises(ProjectionConflictError):
            projector.catch_up()
        assert rival.digest() == digest
    finally:
        rival.close()


def test_every_read_table_is_filled(history, projector):
    projector.catch_up()
    counts = projector.table_counts()
    assert counts["rm_accounts"] == 2 and counts["rm_members"] == 2 and counts["rm_employers"] == 1
    assert counts["rm_account_lines"] == 9  # 7 contributions, 1 withdrawal, 1 reversal
    assert counts["rm_journal_lines"] > counts["rm_account_lines"]
    assert counts["rm_tracking"] == 1


# -- MNY-4: as of a value date, as known at a recorded time -----------------------------------------
def test_balances_as_of_every_day_agree_with_the_events(fund, history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    day = date(2024, 6, 1)
    while day <= date(2024, 9, 15):
        for account in (history["a"], history["b"]):
            assert read.balance(account, day) == Money(fund.ledger.balance(account, day)["balance"]), (account, day)
        day += timedelta(days=1)
    assert read.balance(history["a"]) == fund.balance(history["a"])


def test_as_known_at_leaves_out_what_was_recorded_later(history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    account = history["a"]
    full = read.balance(account, SEPT_1)
    known_before = read.balance(account, SEPT_1, known_at=at(date(2024, 9, 5)))
    assert full - known_before == Money("1866.48")  # the back-dated September remittance
    assert read.balance(account, JULY_20, known_at=at(JULY_20, 9)) == Money("3732.96")  # before the withdrawal
    assert read.balance(account, JULY_20, known_at=at(JULY_20)) == Money("2732.96")
    assert read.balance(account, date(2024, 12, 31), known_at=at(date(2024, 6, 1))) == Money("0.00")


def test_history_from_the_read_side_matches_the_events(fund, history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    for account in (history["a"], history["b"]):
        events = fund.ledger.history(account)
        projected = read.history(account)
        assert [(l["value_date"], l["kind"], l["amount"], l["balance"]) for l in events["lines"]] == [
            (l["value_date"], l["kind"], l["amount"], l["balance"]) for l in projected["lines"]]
        assert projected["closing_balance"] == events["closing_balance"]
    lines_b = read.history(history["b"])["lines"]
    reversal = next(l for l in lines_b if l["is_reversal"])
    assert (reversal["kind_zh"], reversal["reverses_kind"], reversal["period"]) == ("冲正", "remittance", "2024-08")
    assert reversal["original_posting_id"] == history["reversed_posting"]
    earlier = read.history(history["a"], known_at=at(date(2024, 9, 5)))
    assert [l["value_date"] for l in earlier["lines"]][-1] == AUG_8.isoformat()  # not the 1 Sept one yet


def test_trial_balance_as_of_and_known_at(fund, history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    for day in (JUNE_8, JULY_20, AUG_10, SEPT_1, None):
        assert read.trial_balance(day).rows() == fund.ledger.trial_balance(day).rows(), day
        assert read.trial_balance(day).difference.is_zero
    everything = read.trial_balance(SEPT_1)
    known = read.trial_balance(SEPT_1, known_at=at(date(2024, 9, 5)))
    assert everything.balance("2001") - known.balance("2001") == Money("1866.48")
    assert known.difference.is_zero
    assert known.entries < everything.entries


def test_account_state_and_export_code_as_of(history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    assert read.state_as_of(history["b"], AUG_10) == ("NORMAL", "01")
    assert read.state_as_of(history["b"], AUG_15) == ("SEALED", "02")
    assert read.state_as_of(history["a"], AUG_15) == ("NORMAL", "06")  # frozen exports as 06 (ACC-1)
    assert read.account(history["a"])["is_frozen"] is True


def test_contributions_by_period_net_of_reversals(history, projector):
    projector.catch_up()
    read = ReadModel(projector.engine)
    assert read.contributions_by_period(history["b"]) == {
        "2024-06": Money("1866.48"), "2024-07": Money("1866.48"), "2024-08": Money("0.00")}
    assert read.contributions_by_period(history["a"], as_of=AUG_8) == {
        p: Money("1866.48") for p in ("2024-06", "2024-07", "2024-08")}


# -- loans: the projected instalments follow the loan's own book ------------------------------------------
def loan_history(fund: Any) -> str:
    """The worked loan: instalments 1–3 on time by card, 4 paid ten days late, payment 2 reversed and
    paid again, then 50,000.00 prepaid (reduce-payment)."""
    fund.on(date(2024, 6, 1))
    with fund.ledger.audit_bulk_load():
        employer = fund.employer(ratio="12", from_period="2024-06")
        borrower, account = fund.member(employer, base="30000.00", from_period="2024-06")
        for month in range(6, 13):
            fund.on(date(2024, month, 5))
            fund.remit(employer, f"2024-{month:02d}", [account])
    fund.on(date(2025, 1, 10))
    loan_no = fund.ledger.apply_for_loan(borrower, "500000.00", 360, "equal-instalment", "800000.00", "20000.00",
                                         date(2025, 1, 10), "ICBC")["loan_no"]
    fund.ledger.approve_loan(loan_no, date(2025, 1, 10))
    fund.on(date(2025, 1, 15))
    fund.ledger.disburse_loan(loan_no, date(2025, 1, 15))
    for day in (date(2025, 2, 17), date(2025, 3, 17), date(2025, 4, 15), date(2025, 5, 25)):
        fund.on(day)
        due = fund.ledger.loan_status(loan_no, day)["amount_due"]
        fund.ledger.pay_loan(loan_no, due, day, "card", f"{loan_no}-{day}")
    fund.on(date(2025, 5, 26))
    fund.ledger.reverse_loan_payment(loan_no, 2, date(2025, 5, 26), "银行退回")
    due = fund.ledger.loan_status(loan_no, date(2025, 5, 26))["amount_due"]
    fund.ledger.pay_loan(loan_no, due, date(2025, 5, 26), "counter", f"{loan_no}-again")
    fund.on(date(2025, 6, 1))
    fund.ledger.prepay_loan(loan_no, "50000.00", date(2025, 6, 1), "reduce-payment", f"{loan_no}-prepay")
    return loan_no


@pytest.mark.parametrize("page_size", [1, 4])
def test_a_loans_instalments_are_rewritten_only_when_its_schedule_changes(fund, monkeypatch, page_size):
    """A payment, a reversal or falling due leaves the instalment rows as they were; a prepayment, a
    repricing and the payoff rewrite them — the same tables as rewriting every touched loan every page."""
    from ledger.projections import loans as loans_module

    loan_no = loan_history(fund)  # payments, a late one, a reversal, a reduce-payment prepayment
    for day in (date(2025, 6, 16), date(2025, 7, 15), date(2025, 8, 15)):
        fund.on(day)
        fund.ledger.pay_loan(loan_no, fund.ledger.loan_status(loan_no, day)["amount_due"], day, "card", f"p-{day}")
    fund.on(date(2026, 1, 1))
    assert fund.ledger.reprice_loans(date(2026, 1, 1))["repriced"] == 1
    fund.on(date(2026, 3, 2))
    fund.ledger.pay_off_loan(loan_no, date(2026, 3, 2), "payoff")
    written: list[tuple[str, bool]] = []
    original = loans_module._write_loan

    def spy(batch: Any, loan: Any, payoff_source: Any, instalments: bool = True) -> None:
        written.append((loan.loan_no, instalments))
        original(batch, loan, payoff_source, instalments)

    monkeypatch.setattr(loans_module, "_write_loan", spy)
    projector = Projector.for_ledger(fund.ledger, page_size=page_size)
    try:
        projector.catch_up()
        skipping = projector.digest()
        assert fund.ledger.loan(loan_no).state == "CLOSED"
        kept = [instalments for number, instalments in written if number == loan_no]
        assert kept.count(False) >= 3  # pages with only payments or a reversal
        assert kept.count(True) >= (4 if page_size == 1 else 1)  # disbursed, prepaid, repriced, paid off
        monkeypatch.setattr(loans_module, "SKIP_UNCHANGED_SCHEDULES", False)
        written.clear()
        projector.rebuild()
        assert all(instalments for _number, instalments in written)
        assert projector.digest() == skipping
    finally:
        projector.close()


def test_loan_rows_follow_the_book_and_rebuild_identically(fund):
    from ledger.projections.loans import loan_instalments, loan_parts, loan_payments, loan_row

    loan_no = loan_history(fund)
    projector = Projector.for_ledger(fund.ledger, page_size=3)  # loans replayed across many pages
    try:
        projector.catch_up()
        loan = fund.ledger.loan_whole(loan_no)
        row = loan_row(projector.engine, loan_no)
        assert (row["state"], row["annual_rate"]) == ("ACTIVE", "2.85")
        assert row["outstanding_principal_fen"] == int(loan.subledger_as_of(date.max)["principal"].amount * 100)
        with projector.engine.connect() as connection:
            schedule = connection.execute(select(loan_instalments).order_by(loan_instalments.c.number)).mappings().all()
            parts = connection.execute(select(loan_parts)).mappings().all()
            payments = connection.execute(select(loan_payments)).mappings().all()
        assert [(r["number"], r["due_on"], r["principal_fen"], r["interest_fen"]) for r in schedule] == [
            (a.number, a.due_on, int(a.instalment.principal.amount * 100), int(a.instalment.interest.amount * 100))
            for a in loan.book.accounts]
        for account in loan.book.accounts[:5]:
            mine = [p for p in parts if p["number"] == account.number]
            assert sum(p["interest_fen"] for p in mine) == int(account.interest_paid.amount * 100)
            assert sum(p["principal_fen"] for p in mine) == int(account.principal_paid.amount * 100)
        penalty_fen = sum(p["penalty_fen"] for p in parts)
        assert penalty_fen == int(loan.book.penalty_paid.amount * 100) > 0  # instalment 4 was paid late
        assert [p["event"] for p in payments].count("PaymentReversed") == 1
        assert sorted({p["source"] for p in parts}) == ["card", "counter"]
        digest = projector.digest()
        projector.rebuild()
        assert projector.digest() == digest
        assert ReadModel(projector.engine).trial_balance().rows() == fund.ledger.trial_balance().rows()
    finally:
        projector.close()
