"""The query of the fake Events API: its filters, time range and paging tokens, parsed and
matched against stored events as Mailgun documents them."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

MAX_LIMIT = 300
DEFAULT_LIMIT = 300
_FILTERS = ("event", "recipient", "message-id", "severity", "user-variables")


class BadQuery(ValueError):
    """A query Mailgun would answer with 400."""


@dataclass(frozen=True)
class EventsQuery:
    filters: dict[str, str]
    begin: float | None
    end: float | None
    ascending: bool
    limit: int
    offset: int

    @classmethod
    def parse(cls, params: Mapping[str, str], offset: int = 0) -> EventsQuery:
        ascending = params.get("ascending", "no").lower()
        if ascending not in ("yes", "no"):
            raise BadQuery("ascending must be 'yes' or 'no'")
        raw_limit = params.get("limit", str(DEFAULT_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}")
        filters = {name: params[name] for name in _FILTERS if params.get(name)}
        if "user-variables" in filters:
            try:
                variables = json.loads(filters["user-variables"])
            except ValueError:
                raise BadQuery("user-variables must be a JSON object") from None
            if not isinstance(variables, dict):
                raise BadQuery("user-variables must be a JSON object")
        return cls(
            filters,
            _moment(params.get("begin")),
            _moment(params.get("end")),
            ascending == "yes",
            int(raw_limit),
            offset,
        )

    def params(self) -> dict[str, str]:
        out = dict(self.filters)
        out.update(ascending="yes" if self.ascending else "no", limit=str(self.limit))
        if self.begin is not None:
            out["begin"] = repr(self.begin)
        if self.end is not None:
            out["end"] = repr(self.end)
        return out

    def matches(self, item: Mapping[str, Any]) -> bool:
        stamp = float(item["timestamp"])
        low, high = self.begin, self.end
        if low is not None and high is not None and low > high:
            low, high = high, low  # begin after end: a descending range, same events
        if (low is not None and stamp < low) or (high is not None and stamp > high):
            return False
        return all(_filter_matches(name, value, item) for name, value in self.filters.items())


def _moment(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        raise BadQuery(f"{raw!r} is neither an RFC 2822 date nor epoch seconds") from None


def _filter_matches(name: str, value: str, item: Mapping[str, Any]) -> bool:
    if name == "event":
        wanted = {part.strip().lower() for part in value.replace(" or ", " OR ").split(" OR ")}
        return str(item.get("event", "")).lower() in wanted
    if name == "recipient":
        return str(item.get("recipient", "")).lower() == value.strip().lower()
    if name == "severity":
        return item.get("severity") == value
    if name == "message-id":
        headers = (item.get("message") or {}).get("headers") or {}
        found = str(headers.get("message-id", ""))
        return found.strip("<>") == value.strip().strip("<>")
    variables = item.get("user-variables") or {}
    wanted_vars = json.loads(value)
    return all(str(variables.get(key)) == str(want) for key, want in wanted_vars.items())


def page_token(query: EventsQuery, offset: int) -> str:
    raw = json.dumps({"q": query.params(), "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def query_of_token(token: str) -> EventsQuery:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return EventsQuery.parse(data["q"], int(data["o"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadQuery("invalid page token") from None
