"""The compare bench's reading of wrk's output and of its events check (no processes run)."""

from __future__ import annotations

import pytest

from bench.compare import BenchError, events_check, lua_script, parse_wrk, v2_body

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:8000/api/predict/x
  1 threads and 32 connections
  Latency Distribution
     50%    7.40ms
  11305 requests in 3.00s, 2.1MB read
  Non-2xx or 3xx responses: 5
WRKJSON {"requests": 11305, "duration_us": 3000000, "p50_us": 7400, "p90_us": 9000, \
"p99_us": 21400, "max_us": 40000, "status_errors": 5, "connect_errors": 0, "read_errors": 2, \
"write_errors": 0, "timeouts": 1}
"""


def test_parses_the_lua_result_line_into_rates_and_answers() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result["rps"] == pytest.approx(11305 / 3)
    assert result["answered"] == 11300
    assert result["socket_errors"] == 3
    assert result["p99_us"] == 21400


def test_output_without_the_result_line_is_an_error_that_shows_it() -> None:
    with pytest.raises(BenchError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_events_check_allows_the_answers_in_flight_and_flags_missing_or_duplicates() -> None:
    run = {"requests": 1000, "status_errors": 0, "connections": 32}
    landed = {**run, "events_stored": 1020, "events_unique": 1020, "events_2xx": 1020}
    assert events_check(landed).endswith("landed, once")
    missing = {**landed, "events_stored": 999, "events_unique": 999, "events_2xx": 999}
    assert "MISSING" in events_check(missing)
    doubled = {**landed, "events_stored": 1021}
    assert "DUPLICATE" in events_check(doubled)


def test_bodies_go_into_the_lua_script_verbatim_and_v2_has_a_column_per_feature() -> None:
    body = v2_body({"sepal_length_cm": 4.4, "petal_width_cm": 0.2})
    assert '"content_type": "pd"' in body
    assert '"name": "petal_width_cm", "shape": [1], "datatype": "FP64", "data": [0.2]' in body
    assert f"wrk.body = [[{body}]]" in lua_script(body, {"X-API-Key": "k"})
    with pytest.raises(BenchError):
        lua_script("[[x]]", {})
