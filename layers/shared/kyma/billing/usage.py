"""What was charged, per account, UTC day, endpoint and model (table Usage).

The settle transaction adds each charge to its day's row (kyma.billing.ledger.Ledger.settle): a row
counts a charge if and only if the charge exists, so usage is exact without reading the
ledger.  Released holds never reach it; refunds are ledger entries of their own (usage says
what was charged).  `GET /v1/usage` reads at most 366 days of rows, newest first.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kyma.billing.money import micros_to_json
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import rows, to_item, values

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ENDPOINT_OF_KIND = {"voice_clone": "voice-clone", "voice_design": "voice-design", "speech": "speech",
                    "speech_job": "speech-jobs"}
DEFAULT_DAYS, MAX_DAYS = 30, 366


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def usage_update(cfg: Config, account_id: str, *, kind: str, model: str, characters: int, cost_micros: int,
                 now: float | None = None) -> dict:
    """Settle-transaction item: one more charged request on today's row for this endpoint and model."""
    day = utc_day(time.time() if now is None else now)
    endpoint = ENDPOINT_OF_KIND.get(kind, kind)
    return {"Update": {
        "TableName": cfg.usage_table,
        "Key": to_item({"account_id": account_id, "usage_key": f"{day}#{endpoint}#{model}"}),
        "UpdateExpression": "ADD requests :one, characters :chars, cost_micros :cost "
                            "SET #day = :day, endpoint = :endpoint, model = :model",
        "ExpressionAttributeNames": {"#day": "date"},
        "ExpressionAttributeValues": values(one=1, chars=characters, cost=cost_micros, day=day,
                                            endpoint=endpoint, model=model),
    }}


def parse_range(query: dict[str, str], today: date | None = None) -> tuple[str, str]:
    """`start` and `end` (UTC days, inclusive; default the last 30), or 400."""
    today = today or datetime.now(UTC).date()
    try:
        end = _day(query["end"]) if "end" in query else today
        start = _day(query["start"]) if "start" in query else None
    except ValueError:                        # not a date: the message names the form, nothing else
        raise errors.InvalidRequest("start and end must be dates as YYYY-MM-DD, e.g. 2026-11-01.") from None
    if start is None:
        try:
            start = end - timedelta(days=DEFAULT_DAYS - 1)
        except OverflowError:                 # the default start would fall before 0001-01-01
            raise errors.InvalidRequest(f"Without start, the range is the {DEFAULT_DAYS} days up to end, and "
                                        f"{end.isoformat()} has no {DEFAULT_DAYS} days before it: send start "
                                        "too.") from None
    if start > end:
        raise errors.InvalidRequest("start must not be after end.")
    if (end - start).days + 1 > MAX_DAYS:
        raise errors.InvalidRequest(f"At most {MAX_DAYS} days at a time.")
    return start.isoformat(), end.isoformat()


def _day(text: str) -> date:
    """YYYY-MM-DD only (date.fromisoformat also takes 20261125, 2026-W48-3 and non-ASCII digits)."""
    if not _DAY.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)


class Usage:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def between(self, account_id: str, start: str, end: str) -> list[dict]:
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.usage_table, "ScanIndexForward": False,
            "KeyConditionExpression": "account_id = :a AND usage_key BETWEEN :start AND :end",
            "ExpressionAttributeValues": values(a=account_id, start=start, end=end + "~")}
        return [view(r) for r in rows(self.ddb, "query", **kwargs)]


def view(row: dict) -> dict:
    return {"date": row["date"], "endpoint": row["endpoint"], "model": row["model"],
            "requests": int(row.get("requests", 0)), "characters": int(row.get("characters", 0)),
            "cost_usd": micros_to_json(int(row.get("cost_micros", 0)))}
