"""Server-side texts the dashboard shows are translated by code (issue 12): every ``ErrorCode`` has
a French and an English sentence in ``dashboard/src/errorMessages.ts``, and every alert rule kind a
title in both languages in ``dashboard/src/strings/resources.ts``, so a new code or kind cannot ship
untranslated."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.alerts import AlertRuleKind
from schemas.errors import ErrorCode

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard" / "src"
ENTRY = re.compile(
    r"""^\s*([A-Z][A-Z0-9_]*):\s*\{\s*fr:\s*(['"`])(.*?)\2,\s*en:\s*(['"`])(.*?)\4,?\s*\},?\s*$""",
    re.DOTALL | re.MULTILINE,
)


def error_table() -> dict[str, tuple[str, str]]:
    """``ERROR_MESSAGES`` of errorMessages.ts: code -> (fr, en), read as text (entries may wrap)."""
    text = (DASHBOARD / "errorMessages.ts").read_text(encoding="utf-8")
    start = text.index("export const ERROR_MESSAGES")
    body = text[text.index("{", text.index("=", start)) + 1 : text.index("\n}\n", start)]
    body = re.sub(r"^\s*//.*$", "", body, flags=re.MULTILINE)
    entries = re.split(r"\n(?=  [A-Z])", body)
    table = {}
    for entry in entries:
        if not entry.strip():
            continue
        match = ENTRY.match(entry.strip("\n"))
        assert match, f"unreadable entry in ERROR_MESSAGES: {entry.strip()!r}"
        table[match.group(1)] = (match.group(3), match.group(5))
    return table


def test_every_error_code_has_a_french_and_an_english_sentence() -> None:
    table = error_table()
    missing = [code.value for code in ErrorCode if code.value not in table]
    assert not missing, f"add these codes to dashboard/src/errorMessages.ts: {missing}"
    for code in ErrorCode:
        fr, en = table[code.value]
        assert fr.strip() and en.strip(), code
    assert table["NOT_FOUND"] == ("Introuvable", "Not found")  # the parser reads real entries


def test_the_management_api_own_codes_are_translated_too() -> None:
    table = error_table()
    for code in ("INVALID_CREDENTIALS", "INCOMPATIBLE_VERSION", "LAST_ADMIN", "WRONG_PASSWORD"):
        assert code in table


def test_every_alert_rule_kind_has_a_title_in_both_languages() -> None:
    text = (DASHBOARD / "strings" / "resources.ts").read_text(encoding="utf-8")
    fr, en = text.split("export const en", 1)
    for kind in AlertRuleKind:
        key = f"'alertKind.{kind.value}':"
        assert key in fr and key in en, f"add alertKind.{kind.value} to strings/resources.ts"
