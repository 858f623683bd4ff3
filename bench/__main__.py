"""``python -m bench <scenario> [options]``: run one benchmark scenario (default: ``predict``).

Each scenario is a module ``bench/<name>.py`` with ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

DEFAULT = "predict"


def scenarios() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(
            "usage: python -m bench [scenario] [options]\n\nscenarios: "
            + ", ".join(scenarios())
            + f"\n(default: {DEFAULT})\n"
        )
        return 0
    if not args or args[0].startswith("-"):
        name, rest = DEFAULT, args
    else:
        name, rest = args[0].replace("-", "_"), args[1:]
    if name not in scenarios():
        sys.stderr.write(f"unknown scenario {name!r}; known: {', '.join(scenarios())}\n")
        return 2
    result: int = importlib.import_module(f"bench.{name}").main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
