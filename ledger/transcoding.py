"""The application's JSON transcoder: eventsourcing's, with a faster decoder.

Every load of an aggregate decodes its snapshot and events; a fund account with ten years of
contributions or a loan with years of payments is a large JSON document, and the stdlib decoder
calls a Python object hook for every object in it. :class:`FastJSONTranscoder` parses with orjson
(C) and then turns each ``{"_type_": name, "_data_": data}`` object, and only those, into its
registered transcoding's value, innermost first: exactly what ``JSONTranscoder.decode`` gives.
Values of immutable types (Money, dates, UUIDs, datetimes) read from the same text are shared.

Anything orjson reads differently from the stdlib falls back to ``JSONTranscoder.decode``: text
orjson refuses (NaN, lone surrogates) and any float (orjson reads an integer beyond 64 bits as a
float, the stdlib keeps it exact; the ledger itself never stores a float). Encoding is unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

IMMUTABLE_TYPES = ("money", "date_iso", "uuid_hex", "datetime_iso", "decimal_str")
MEMO_MAX = 200_000


class _FloatSeen(Exception):
    """orjson gave a float somewhere: the stdlib decoder decides."""


class FastJSONTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[str, str], Any] = {}

    def decode(self, data: bytes) -> Any:
        try:
            return self.walk(orjson.loads(data))
        except (orjson.JSONDecodeError, _FloatSeen):
            return super().decode(data)

    def walk(self, value: Any) -> Any:
        """``value`` (parsed JSON) with every typed object decoded, innermost first."""
        kind = type(value)
        if kind is dict:
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                return self.typed(value["_type_"], self.walk(value["_data_"]))
            memo = self._memo
            for key, item in value.items():
                kind = type(item)
                if kind is dict and len(item) == 2 and type(item.get("_data_")) is str and "_type_" in item:
                    found = memo.get((item["_type_"], item["_data_"]))  # a typed leaf: most values are
                    value[key] = found if found is not None else self.typed(item["_type_"], item["_data_"])
                elif kind is dict or kind is list or kind is float:
                    value[key] = self.walk(item)
        elif kind is list:
            for index, item in enumerate(value):
                if type(item) in (dict, list, float):
                    value[index] = self.walk(item)
        elif kind is float:
            raise _FloatSeen
        return value

    def typed(self, name: Any, data: Any) -> Any:
        """One ``{"_type_": name, "_data_": data}`` object decoded (immutable values shared)."""
        if name in IMMUTABLE_TYPES and type(data) is str:
            key = (name, data)
            found = self._memo.get(key)
            if found is None:
                if len(self._memo) > MEMO_MAX:
                    self._memo.clear()
                found = self._memo[key] = self._decode_obj({"_type_": name, "_data_": data})
            return found
        return self._decode_obj({"_type_": name, "_data_": data})
