"""What a read-only user (the analyst) may run, decided from ClickHouse's own parse of the query.

The engine parses the statement, never a regex: ``formatQuerySingleLine`` (which refuses
multi-statements) gives the one statement, ``EXPLAIN AST`` its syntax tree, on a ``readonly = 1``
connection of their own. The tree is then judged:

* only reading statements: ``SELECT`` (any ``UNION``/``INTERSECT``/``EXCEPT``), ``SHOW TABLES``/
  ``DATABASES``/``COLUMNS``, ``SHOW CREATE TABLE``, ``DESCRIBE``, ``EXISTS``, and ``EXPLAIN`` of
  a ``SELECT``; everything else (``KILL``, ``INSERT``, DDL, ``SYSTEM``, ``SET``, ``USE``, ``SHOW
  PROCESSLIST``, access management...) is READONLY;
* no ``INTO OUTFILE`` (chdb writes the file itself, even on a ``readonly = 1`` connection);
* no ``SETTINGS`` clause: the analysts' limits (``max_execution_time``...) stay as opened;
* tables of the ``system`` database only from a short list that shows nobody else's queries and
  no credentials (not ``processes``, ``query_log``, ``users``, ``disks``...), no temporary tables
  of other sessions, and ``system`` cannot be the current database;
* table functions only from those that read nothing outside the query (``numbers``, ``values``,
  ``view``...), so never ``file``, ``url``, ``s3``, ``remote``, ``merge``, ``input``...; and no
  function that reads files, dictionaries or server configuration (``file``, ``dictGet``,
  ``getServerSetting``, ``catboostEvaluate``...).

The connections analysts run on have ``readonly = 1`` as well (``engine.py``), so ClickHouse itself
refuses writes, setting changes and most table functions: this module is the first of two walls.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from infra.clickhouse_server.engine import ANALYST_LEVEL, Engine, EngineConnection
from infra.clickhouse_server.protocol import READONLY, SYNTAX_ERROR, ClickHouseError

ACCESS_DENIED = 497
PARSER_MAX_QUERY_SIZE = 4 << 20
"""The parser's own max_query_size: the statement goes in quoted (the engine that runs it keeps
ClickHouse's 256 KiB limit)."""

READING_STATEMENTS = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "ShowTables",
        "ShowColumns",
        "ShowCreateTableQuery",
        "ShowCreateViewQuery",
        "ShowCreateDatabaseQuery",
        "DescribeQuery",
        "ExistsTableQuery",
        "ExistsViewQuery",
        "ExistsDatabaseQuery",
        "ExistsDictionaryQuery",
        "Explain",
    }
)
_SELECTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery"})

PRIVATE_DATABASES = frozenset({"system", "_temporary_and_external_tables"})
"""Databases read-only users may not use as their current one; of these, only the tables in
``PUBLIC_SYSTEM_TABLES`` may be read at all."""

PUBLIC_SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "databases",
        "tables",
        "columns",
        "functions",
        "formats",
        "settings",
        "data_type_families",
        "table_engines",
        "table_functions",
        "database_engines",
        "aggregate_function_combinators",
        "collations",
        "time_zones",
        "keywords",
        "contributors",
        "licenses",
    }
)
"""System tables showing only the server's catalogue and the user's own settings (clients such
as clickhouse-connect and its SQLAlchemy dialect read ``settings``, ``tables``, ``databases``)."""

TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generate_series",
        "generateseries",
        "generaterandom",
        "values",
        "view",
        "null",
    }
)
"""Table functions (``FROM f(...)``) that read nothing outside the query itself."""

DENIED_FUNCTIONS = frozenset(
    {
        # read files, other servers or the input of another statement
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "merge",
        "loop",
        "input",
        "executable",
        "executablepool",
        "dictionary",
        "gcs",
        "cosn",
        "oss",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "jdbc",
        "odbc",
        "fuzzjson",
        "fuzzquery",
        "ytsaurus",
        "arrowflight",
        "arrowflightcluster",
        "catboostevaluate",
        "naivebayesclassifier",
        "joinget",
        "joingetornull",
        # server configuration, certificates, access control, the server log
        "getserversetting",
        "getmergetreesetting",
        "getmacro",
        "getclienthttpheader",
        "showcertificate",
        "currentprofiles",
        "enabledprofiles",
        "defaultprofiles",
        "currentroles",
        "enabledroles",
        "defaultroles",
        "logtrace",
        "__getscalar",
        "addresstoline",
        "addresstolinewithinlines",
        "addresstosymbol",
        "demangle",
    }
)
DENIED_FUNCTION_PREFIXES = (
    "dict",
    "filesystem",
    "s3",
    "azure",
    "hdfs",
    "iceberg",
    "deltalake",
    "hudi",
    "paimon",
    "mergetree",
    "prometheus",
    "timeseries",
)


@dataclass
class Node:
    """One line of ``EXPLAIN AST``: its kind, the first word after it, and its children."""

    kind: str
    name: str
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def walk(self) -> list[Node]:
        nodes = [self]
        for child in self.children:
            nodes += child.walk()
        return nodes


def parse_tree(text: str) -> Node:
    """The tree of ``EXPLAIN AST`` output (one node a line, one space of indent a level).

    Names are printed raw, so a name holding a newline adds lines: such lines can only add
    nodes, never hide the real ones; a second root or a jump in depth is refused.
    """
    root: Node | None = None
    stack: list[Node] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        words = line.strip().split(" ")
        node = Node(words[0], words[1] if len(words) > 1 else "")
        if depth == 0:
            if root is not None:
                raise _denied("the statement does not parse as one statement")
            root = node
            stack = [node]
            continue
        if root is None or depth > len(stack):
            raise _denied("the statement's syntax tree is not understood")
        del stack[depth:]
        node.parent = stack[-1]
        stack[-1].children.append(node)
        stack.append(node)
    if root is None:
        raise ClickHouseError.build(SYNTAX_ERROR, "Empty query")
    return root


def _denied(text: str) -> ClickHouseError:
    return ClickHouseError(
        ACCESS_DENIED,
        f"DB::Exception: {text}: read-only users may not do this. (ACCESS_DENIED)",
        "ACCESS_DENIED",
    )


def _readonly(text: str) -> ClickHouseError:
    return ClickHouseError.build(READONLY, f"{text} in readonly mode")


def _private_reference(name: str) -> str | None:
    """The private table a (possibly dotted) name may refer to, if any.

    Every way of splitting the name at a dot is considered (``a.b.c`` may be database ``a``,
    table ``b.c``), so quoting a dot into a name cannot hide a reference.
    """
    for index, char in enumerate(name):
        if char != ".":
            continue
        database, rest = name[:index], name[index + 1 :]
        if database not in PRIVATE_DATABASES:
            continue
        if database == "system" and any(
            rest == table or rest.startswith(table + ".") for table in PUBLIC_SYSTEM_TABLES
        ):
            continue
        return f"{database}.{rest}"
    return None


def _denied_function(name: str) -> bool:
    lowered = name.lower()
    return lowered in DENIED_FUNCTIONS or lowered.startswith(DENIED_FUNCTION_PREFIXES)


def _explain_options(node: Node) -> bool:
    """Whether a ``Set`` is EXPLAIN's own options (``EXPLAIN indexes = 1 SELECT``): they come
    before the query and ClickHouse accepts only its fixed list of them there, no setting."""
    parent = node.parent
    return (
        node.kind == "Set"
        and parent is not None
        and parent.kind == "Explain"
        and parent.children[0] is node
    )


def judge(root: Node) -> None:
    """Raise the error ClickHouse would give if this statement is not a plain read."""
    if root.kind not in READING_STATEMENTS:
        raise _readonly(f"Cannot execute {root.kind}: only reading statements may run")
    if root.kind == "Explain":
        queries = [
            child
            for child in root.children
            if child.kind not in {"Identifier", "Literal"} and not _explain_options(child)
        ]
        if not queries or queries[0].kind not in _SELECTS:
            inner = queries[0].kind if queries else "nothing"
            raise _readonly(f"Cannot execute EXPLAIN of {inner}: only EXPLAIN of SELECT may run")
    for node in root.walk():
        if node.kind == "Set" and not _explain_options(node):
            raise _readonly("Cannot modify settings (SETTINGS clause)")
        if node.kind in READING_STATEMENTS:
            # A statement's own literal children are INTO OUTFILE's file name and compression
            # (LIKE patterns and LIMITs belong to other nodes); SHOW and DESCRIBE take it too.
            for child in node.children:
                if child.kind == "Literal":
                    raise _denied("INTO OUTFILE writes a file on the server")
        if node.kind in {"TableIdentifier", "Identifier"}:
            private = _private_reference(node.name)
            if private is not None:
                raise _denied(f"{private} shows other users' queries or server internals")
        if node.kind == "Function":
            in_from = node.parent is not None and node.parent.kind == "TableExpression"
            if in_from and node.name.lower() not in TABLE_FUNCTIONS:
                raise _denied(f"table function {node.name} reaches beyond the query")
            if _denied_function(node.name):
                raise _denied(f"function {node.name} reads files, other servers or server settings")


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StatementPolicy:
    """Checks read-only users' statements on a ``readonly = 1`` parser connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # One parse at a time, waited for on the event loop: waiting analysts never hold the
        # engine's worker threads the services need.
        self._turn = asyncio.Lock()
        self._lock = threading.Lock()
        self._parser: EngineConnection | None = None

    async def check(self, sql: str, database: str, params: dict[str, str]) -> None:
        """Raise (READONLY / ACCESS_DENIED / SYNTAX_ERROR) unless a read-only user may run it."""
        if database in PRIVATE_DATABASES:
            raise _denied(f"database {database} holds other users' queries and server internals")
        async with self._turn:
            text = await self.engine.run(self._explain, sql, params)
        judge(parse_tree(text))

    def _explain(self, sql: str, params: dict[str, str]) -> str:
        with self._lock:
            if self._parser is None:
                self._parser = self.engine.open_connection(
                    ANALYST_LEVEL, {"max_query_size": str(PARSER_MAX_QUERY_SIZE)}
                )
            connection = self._parser.connection
            try:
                statement = (
                    connection.query(
                        f"SELECT formatQuerySingleLine({_sql_string(sql)})", "TabSeparatedRaw"
                    )
                    .bytes()
                    .decode()
                    .rstrip("\n")
                )
                tree: bytes = connection.query(
                    f"EXPLAIN AST {statement}", "TabSeparatedRaw", params=params
                ).bytes()
                return tree.decode(errors="replace")
            except RuntimeError as exc:
                error = ClickHouseError.from_engine(exc)
                # The parse error is about our wrapper's argument; keep ClickHouse's own words.
                head, cut, _ = error.message.partition(": In scope SELECT formatQuerySingleLine(")
                if cut:
                    error.message = f"{head.rstrip(' .')}. ({error.name})"
                raise error from None
