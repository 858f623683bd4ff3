"""The ``modelgate`` command: one entry point for every service and tool.

Each subcommand lives in its own module exposing ``main(argv) -> int``; importing lazily keeps
``modelgate clickhouse`` from loading scikit-learn and ``modelgate ingress`` from loading chdb.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("modelgate.stack", "run the whole stack locally (supervised subprocesses)"),
    "clickhouse": ("infra.clickhouse_server", "the embedded ClickHouse HTTP server (chdb)"),
    "migrate": ("infra.migrate", "apply ClickHouse migrations"),
    "demo": ("modelgate.demo", "create a demo model and API, print how to call it"),
    "simulate": ("modelgate.simulate", "send realistic (optionally drifting) traffic to an API"),
    "ingress": ("ingress.__main__", "the HTTP prediction edge"),
    "predictor": ("predictor.__main__", "a prediction worker"),
    "metrics-consumer": ("metrics_consumer.__main__", "stream events into ClickHouse"),
    "management-api": ("management_api.__main__", "the management REST API and dashboard"),
}


def usage() -> str:
    lines = ["usage: modelgate <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(usage() + "\n")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"modelgate: unknown command {command!r}\n\n{usage()}\n")
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
