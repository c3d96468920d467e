"""Use cases of employers, members and fund accounts (EMP, ACC, CON, WD, COR, INT).

Each method loads what its rule needs, calls the aggregates, and returns a
JSON-friendly result with the aggregates to save in one transaction through
``LedgerBase.execute`` (atomic, retried on conflict, idempotent by key).
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any, Callable
from uuid import UUID, uuid4

from ledger.aggregates.documents import Payout
from ledger.aggregates.errors import (
    AccountStateError,
    BaseOutOfRangeError,
    InvalidIdentityError,
    WithdrawalCapError,
    WithdrawalEvidenceError,
    WithdrawalKindError,
    WithdrawalNotAllowedError,
)
from ledger.aggregates.fund_account import CLOSED, GL_CLEARING, GL_FUND, FundAccount
from ledger.aggregates.parties import Employer, Member, check_period, check_resident_id
from ledger.application import NotFoundError, as_str, chunked, topic_of
from ledger.interest import compute_interest, interest_year
from ledger.money import ZERO, Money, parse_rate, round_fen, round_yuan

INTEREST_BATCH_SIZE = 500
PROGRESS = Callable[[int], None]


def derive_account_no(id_number: str) -> str:
    """A 16-digit account number derived from the member's id (stable, no global counter)."""
    digest = hashlib.sha256(f"gjj-account:{id_number}".encode()).hexdigest()
    return "9" + str(int(digest, 16) % 10**15).zfill(15)


def share(base: Money, ratio: Decimal, rounding: str) -> Money:
    """CON-1: each share = round(base × ratio), to the fen or to the yuan."""
    exact = base.amount * ratio / Decimal(100)
    return Money(round_yuan(exact) if rounding == "yuan" else round_fen(exact))


class AccountCommands:
    """Mixin on the ledger application: the fund-account use cases."""

    # -- lookups ------------------------------------------------------------------
    def employer(self, credit_code: str) -> Employer:
        return self.load(Employer, Employer.create_id(credit_code.upper()), "employer", credit_code)

    def member(self, id_number: str) -> Member:
        return self.load(Member, Member.create_id(id_number.upper()), "id_number", id_number)

    def account(self, account_no: str) -> FundAccount:
        return self.load(FundAccount, FundAccount.create_id(account_no), "account", account_no)

    def account_whole(self, account_no: str) -> FundAccount:
        """The account with every posting since it opened (history mode, ADR 0015): statements, audits."""
        self.account(account_no)  # a named NotFoundError when there is none
        return self.replay_whole(FundAccount.create_id(account_no))

    def account_of(self, member: Member) -> FundAccount:
        return self.account(member.account_no)

    def member_by_account(self, account_no: str) -> Member:
        account = self.account(account_no)
        return self.load(Member, account.member_id, "account", account_no)

    def account_ids(self) -> list[UUID]:
        return self.ids_of(topic_of(FundAccount, "Opened"))

    # -- employers ----------------------------------------------------------------
    def open_employer(self, credit_code: str, name: str, bank_account: str, opened_on: date,
                      ratio: str | None = None, from_period: str | None = None) -> dict[str, Any]:
        def body():
            employer = Employer.open(credit_code, name, bank_account, opened_on)
            existing = self.find(employer.id)
            if existing is not None:
                if existing.name != employer.name:
                    raise InvalidIdentityError("this credit code is registered under another name",
                                               field="credit_code", rule="EMP-1")
                return {"employer": existing.credit_code, "name": existing.name, "existing": True}, []
            if ratio is not None:
                self._apply_ratios(employer, from_period or opened_on.strftime("%Y-%m"), ratio, ratio, opened_on)
            return {"employer": employer.credit_code, "name": employer.name, "existing": False}, [employer]
        return self.execute("open-employer", None, {}, body)

    def _apply_ratios(self, employer: Employer, from_period: str, employer_ratio: str, employee_ratio: str,
                      on: date) -> None:
        rules = self.policy.at(on).contribution
        employer.set_ratios(from_period, parse_rate(employer_ratio, "employer_ratio"),
                            parse_rate(employee_ratio, "employee_ratio"), rules.ratio_min, rules.ratio_max,
                            rules.ratios_equal)

    def set_ratios(self, credit_code: str, from_period: str, employer_ratio: str, employee_ratio: str,
                   value_date: date) -> dict[str, Any]:
        def body():
            employer = self.employer(credit_code)
            self._apply_ratios(employer, from_period, employer_ratio, employee_ratio, value_date)
            return {"employer": credit_code, "from_period": from_period, "employer_ratio": employer_ratio,
                    "employee_ratio": employee_ratio}, [employer]
        return self.execute("set-ratios", None, {}, body)

    def defer(self, credit_code: str, first_period: str, last_period: str, approved_on: date) -> dict[str, Any]:
        def body():
            employer = self.employer(credit_code)
            check_period(first_period, "first_period")
            check_period(last_period, "last_period")  # before the deadline arithmetic reads it
            months = self.policy.at(approved_on).contribution.deferral_backpay_deadline_months
            year, month = (int(p) for p in last_period.split("-"))
            total = year * 12 + month - 1 + months
            deadline = date(total // 12, total % 12 + 1, 1)
            employer.defer(first_period, last_period, deadline, approved_on)
            employer.change_state("03", approved_on)
            return {"employer": credit_code, "first_period": first_period, "last_period": last_period,
                    "backpay_deadline": deadline.isoformat()}, [employer]
        return self.execute("defer", None, {}, body)

    # -- members and accounts ---------------------------------------------------------
    def open_member(self, id_number: str, name: str, employer_code: str, registered_on: date,
                    birth_date: date | None = None, sex: str | None = None) -> dict[str, Any]:
        def body():
            employer = self.employer(employer_code)
            number = check_resident_id(id_number.upper())
            existing = self.find(Member.create_id(number))
            if existing is not None:
                if existing.name != name.strip():
                    raise InvalidIdentityError("this id is registered under another name", field="id_number")
                return {"id_number": number, "account_no": existing.account_no, "existing": True}, []
            member = Member.register(number, name, birth_date, sex, employer.id, derive_account_no(number),
                                     registered_on)
            return {"id_number": number, "name": member.name, "account_no": member.account_no,
                    "birth_date": member.birth_date.isoformat(), "sex": member.sex, "existing": False}, [member]
        return self.execute("open-member", None, {}, body)

    def open_account(self, id_number: str, opened_on: date, base: str | None = None,
                     from_period: str | None = None) -> dict[str, Any]:
        def body():
            member = self.member(id_number)
            existing = self.find(FundAccount.create_id(member.account_no))
            if existing is not None:
                return {"account_no": existing.account_no, "state": existing.state, "existing": True}, []
            account = FundAccount(account_no=member.account_no, member_id=member.id,
                                  employer_id=member.employer_id, opened_on=opened_on)
            if base is not None:
                self._apply_base(account, from_period or opened_on.strftime("%Y-%m"), base, opened_on)
            return {"account_no": account.account_no, "state": account.state, "existing": False}, [account]
        return self.execute("open-account", None, {}, body)

    def open_members_bulk(self, rows: list[dict[str, Any]], opened_on: date, batch_size: int = 1000,
                          progress: PROGRESS | None = None) -> dict[str, Any]:
        """Register members with their accounts and bases in batches (one transaction per batch).

        Each row: id_number, name, employer (credit code), base, from_period. Existing members are skipped.
        """
        created = skipped = 0
        employers: dict[str, Employer] = {}
        for batch in chunked(rows, batch_size):
            def body(batch=batch):
                touched, made, seen = [], 0, 0
                existing = self.load_many(Member.create_id(row["id_number"].upper()) for row in batch)
                for row in batch:
                    code = row["employer"].upper()
                    employer = employers.get(code) or employers.setdefault(code, self.employer(code))
                    number = check_resident_id(row["id_number"].upper())
                    if Member.create_id(number) in existing:
                        seen += 1
                        continue
                    member = Member.register(number, row["name"], None, None, employer.id, derive_account_no(number),
                                             opened_on)
                    account = FundAccount(account_no=member.account_no, member_id=member.id, employer_id=employer.id,
                                          opened_on=opened_on)
                    self._apply_base(account, row.get("from_period") or opened_on.strftime("%Y-%m"), row["base"],
                                     opened_on)
                    touched += [member, account]
                    made += 1
                return {"created": made, "skipped": seen}, touched
            result = self.execute("open-members-bulk", None, {}, body)
            created, skipped = created + result["created"], skipped + result["skipped"]
            if progress:
                progress(len(batch))
        return {"created": created, "skipped": skipped}

    def _apply_base(self, account: FundAccount, from_period: str, base: str, on: date) -> None:
        check_period(from_period, "from_period")
        rules = self.policy.at(on).contribution
        amount = Money.parse(base, "base", positive=True)
        if not rules.base_floor <= amount <= rules.base_cap:
            raise BaseOutOfRangeError(f"base {amount} is outside {rules.base_floor}–{rules.base_cap}", field="base")
        account.set_base(from_period=from_period, base=amount, floor=rules.base_floor, cap=rules.base_cap)

    def set_base(self, account_no: str, from_period: str, base: str, value_date: date) -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            account.check_open()
            self._apply_base(account, from_period, base, value_date)
            return {"account_no": account_no, "from_period": from_period, "base": base}, [account]
        return self.execute("set-base", None, {}, body)

    def link_spouses(self, id_number_a: str, id_number_b: str, value_date: date) -> dict[str, Any]:
        def body():
            a, b = self.member(id_number_a), self.member(id_number_b)
            a.link_spouse(b, value_date)
            return {"member": a.id_number, "spouse": b.id_number}, [a, b]
        return self.execute("link-spouses", None, {}, body)

    def unlink_spouses(self, id_number_a: str, id_number_b: str, value_date: date) -> dict[str, Any]:
        def body():
            a, b = self.member(id_number_a), self.member(id_number_b)
            a.unlink_spouse(b, value_date)
            accounts = [acc for acc in (self.find(FundAccount.create_id(m.account_no)) for m in (a, b)) if acc]
            ended = self.end_offset_agreements(accounts, value_date, "SPOUSE_LINK_ENDED")
            return {"member": a.id_number, "spouse": b.id_number, "unlinked": True,
                    "mandates_ended": [m.loan_no for m in ended if hasattr(m, "loan_no")]}, \
                [a, b, *[acc for acc in accounts if acc.pending_events], *ended]
        return self.execute("unlink-spouses", None, {}, body)

    def set_card(self, id_number: str, bank: str, card_number: str, branch_code: str = "",
                 agreement: str = "") -> dict[str, Any]:
        def body():
            member = self.member(id_number)
            member.set_card(bank, card_number, branch_code, agreement)
            return {"id_number": id_number, "bank": bank, "card": "*" * 12 + card_number[-4:]}, [member]
        return self.execute("set-card", None, {}, body)

    def change_employer(self, id_number: str, employer_code: str, value_date: date) -> dict[str, Any]:
        def body():
            member, employer = self.member(id_number), self.employer(employer_code)
            member.change_employer(employer_id=employer.id, value_date=value_date)
            return {"id_number": id_number, "employer": employer_code}, [member]
        return self.execute("change-employer", None, {}, body)

    # -- account states ------------------------------------------------------------
    def seal(self, account_no: str, value_date: date, reason: str = "left employer") -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            account.seal(self.check_value_date(value_date), reason)
            return self._state_result(account), [account]
        return self.execute("seal", None, {}, body)

    def unseal(self, account_no: str, value_date: date, employer_code: str | None = None) -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            employer_id = self.employer(employer_code).id if employer_code else account.employer_id
            account.unseal(self.check_value_date(value_date), employer_id)
            return self._state_result(account), [account]
        return self.execute("unseal", None, {}, body)

    def freeze(self, account_no: str, authority: str, document: str, value_date: date, amount: str | None = None,
               until: date | None = None) -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            frozen = Money.parse(amount, "amount", positive=True) if amount is not None else None
            account.freeze(f"{authority}:{document}", authority, document, frozen, self.check_value_date(value_date),
                           until)
            return self._state_result(account), [account]
        return self.execute("freeze", None, {}, body)

    def unfreeze(self, account_no: str, authority: str, document: str, lifting_document: str,
                 value_date: date) -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            account.unfreeze(f"{authority}:{document}", authority, lifting_document, self.check_value_date(value_date))
            return self._state_result(account), [account]
        return self.execute("unfreeze", None, {}, body)

    def close_account(self, account_no: str, reason: str, value_date: date) -> dict[str, Any]:
        def body():
            account = self.account(account_no)
            account.close(reason, self.check_value_date(value_date))
            ended = self.end_offset_agreements([account], value_date, f"PAYER_CLOSED:{reason}")
            return self._state_result(account), [account, *ended]
        return self.execute("close", None, {}, body)

    def _state_result(self, account: FundAccount) -> dict[str, Any]:
        return {"account_no": account.account_no, "state": account.state, "export_code": account.export_state_code,
                "frozen": account.is_frozen, "balance": str(account.balance)}

    # -- queries ---------------------------------------------------------------------
    def balance(self, account_no: str, as_of: date | None = None) -> dict[str, Any]:
        return self.with_history(lambda: self._balance(account_no, as_of))

    def _balance(self, account_no: str, as_of: date | None) -> dict[str, Any]:
        account = self.account(account_no)
        day = as_of or self.today()
        retained = self.policy.at(day).account.retained_balance_min
        return {"account_no": account_no, "as_of": day.isoformat(), "state": account.state,
                "export_code": account.export_state_code, "balance": str(account.balance_as_of(day)),
                "available": str(account.available(retained)) if as_of is None else None,
                "frozen": str(account.frozen_sum)}

    def history(self, account_no: str, as_of: date | None = None) -> dict[str, Any]:
        account = self.account_whole(account_no)
        rows = sorted(enumerate(account.movements), key=lambda pair: (pair[1][0], pair[0]))
        running = ZERO
        lines = []
        for _order, (value_date, amount, kind, posting_id) in rows:
            if as_of is not None and value_date > as_of:
                continue
            running = running + Money(amount)
            posting = account.postings.get(posting_id, {})
            lines.append({"value_date": value_date.isoformat(), "kind": kind, "amount": str(Money(amount)),
                          "balance": str(running), "posting_id": posting_id,
                          "reversed": posting.get("reversed", False), "detail": as_str(posting.get("detail", {}))})
        return {"account_no": account_no, "state": account.state, "lines": lines, "closing_balance": str(running)}
