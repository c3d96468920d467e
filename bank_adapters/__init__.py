"""Bank adapters: the ledger's side of the files it exchanges with its settlement banks (BNK-1).

``bank_adapters.formats`` reads and writes the national settlement files (BDC105, BDC106, BDC108,
SBDC100/BDC113) and their plain CSV forms; ``bank_adapters.interface`` is the one small port the ledger
talks to (``BankAdapter``) and a folder transport. Nothing here knows the ledger's aggregates: the only
import from ``ledger`` is the money type.
"""
