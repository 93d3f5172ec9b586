"""How the page writes values for people, in French: times, sizes, percentages, decimals, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..domain.values import Outcome

MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")
# decimal multiples (1 ko = 1000 octets), as the monitoring plots' size bins count them: one base on the page
SIZE_UNITS: tuple[str, ...] = ("ko", "Mo", "Go", "To")
# what a delivery's row keeps (its outcome column), as the page says it; the stored word stays in a title
OUTCOMES = {
    Outcome.PROCESSED.stored: "traité",
    Outcome.DUPLICATE.stored: "doublon",
    Outcome.INTERMEDIATE.stored: "progression",
    Outcome.STALE.stored: "en retard (ignoré)",
    "rejected": "refusé",  # recording/database.py keeps every refusal as one of the last three
    Outcome.UNAVAILABLE.stored: "indisponible",
    Outcome.ERROR.stored: "erreur interne",
}
# why a refused delivery was refused (its reason column: the request's outcome), as the page says it
REASONS = {
    Outcome.DUPLICATE: "doublon",  # a replayed message, kept as rejected before 2026-11-25
    Outcome.UNAUTHORIZED: "non autorisé",
    Outcome.INVALID_JSON: "JSON invalide",
    Outcome.INVALID_PAYLOAD: "payload invalide",
    Outcome.INVALID_PARAMETER: "paramètre invalide",
    Outcome.MISSING_IMAGES: "images manquantes",
    Outcome.TOO_LARGE: "trop volumineux",
    Outcome.INVALID_FRAMING: "corps mal délimité",
    Outcome.INVALID_ENCODING: "encodage invalide",
    Outcome.UNSUPPORTED_MEDIA_TYPE: "type de contenu refusé",
    Outcome.TIMEOUT: "délai dépassé",
    Outcome.UNAVAILABLE: "service indisponible",
    Outcome.ERROR: "erreur interne",
}
REASON_WORDS = {named.value: text for named, text in REASONS.items()}


def moment(iso: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (a naive one is UTC), or None."""
    if not isinstance(iso, str):
        return None
    try:
        value = datetime.fromisoformat(iso)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or outside years 1-9999 in UTC
        return None


def utc_text(iso: Any) -> str:
    """A time as people read it, in UTC to the second: '7 déc. 2026 14:03:12 UTC'; the script rewrites it in
    the browser's time zone. Empty for what is not a time."""
    value = moment(iso)
    if value is None:
        return ""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year} {value:%H:%M:%S} UTC"


def machine_time(iso: Any) -> str:
    """A time as a <time datetime> holds it: UTC to the second ('2026-12-07T14:03:12Z'), HTML allows no
    microseconds."""
    value = moment(iso)
    return f"{value:%Y-%m-%dT%H:%M:%S}Z" if value is not None else ""


def decimal(value: float, digits: int = 1) -> str:
    """A number with a decimal comma, without a trailing ',0' for a whole one: '12,5', '100'."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return text.replace(".", ",")


def percent(value: Any) -> str:
    """A progress as a percentage: 'Progression 100 %'; '—' when unknown."""
    return f"{decimal(value)} %" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def size(value: Any) -> str:
    """A size in bytes for people: '512 octets', '512 ko', '2,0 Mo', '1,5 Go' (1 ko = 1000 octets); one
    decimal under 10, none above."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return ""
    if value < 1000:
        return f"{value} octet" + ("s" if value > 1 else "")
    amount, units = value / 1000, SIZE_UNITS
    while round(amount) >= 1000 and len(units) > 1:  # 999,7 ko reads as 1,0 Mo, not 1000 ko
        amount, units = amount / 1000, units[1:]
    text = f"{amount:.1f}" if amount < 9.95 else f"{amount:.0f}"
    return f"{text.replace('.', ',')} {units[0]}"


def outcome(stored: Any) -> str:
    """What a delivery's outcome says in French; an unknown word as it was stored."""
    return OUTCOMES.get(stored, str(stored))


def reason(stored: Any) -> str:
    """Why a delivery was refused, in French: its first word is the request's outcome, what follows (the part
    of a large body kept) is French already."""
    if not isinstance(stored, str):
        return ""
    word, space, rest = stored.partition(" ")
    text = REASON_WORDS.get(word)
    return text + space + rest if text else stored
