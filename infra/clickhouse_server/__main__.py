"""``python -m infra.clickhouse_server``: the embedded server without going through the CLI.

``infra.localnet`` starts it this way, so the floor never reaches up into the ``modelgate`` roof.
"""

import sys

from infra.clickhouse_server.app import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
