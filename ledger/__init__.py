"""gjj-ledger: the book of record of a Housing Provident Fund centre (住房公积金).

Layers (imports point inwards): ``ledger.money`` and ``ledger.aggregates`` hold
the rules and know nothing of storage or time; ``ledger.application`` and the
services orchestrate them over the event store; ``ledger.projections`` derive
read tables; ``scheduler`` decides when; ``bank_adapters`` speak to banks.
"""
