"""A training CSV's size is checked from its bytes before any parse; limits read as users expect."""

from __future__ import annotations

import pytest

from management_api.datasets import CsvLimits, TrainingError, check_csv_size, inspect_csv
from management_api.jobs import duration_text, memory_text

LIMITS = CsvLimits(max_features=10, max_rows=100, max_cells=500)


def csv_of(columns: int, rows: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    body = "\n".join(",".join("1" for _ in range(columns)) for _ in range(rows))
    return f"{header}\n{body}\n".encode()


def test_a_csv_within_every_limit_passes() -> None:
    check_csv_size(csv_of(11, 45), LIMITS)  # 10 features + target, 495 cells


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        (csv_of(12, 5), "max_features"),
        (csv_of(2, 101), "max_rows"),
        (csv_of(11, 46), "max_cells"),
    ],
)
def test_a_csv_over_a_limit_is_refused_naming_it(data: bytes, limit: str) -> None:
    with pytest.raises(TrainingError) as info:
        check_csv_size(data, LIMITS)
    assert info.value.details["limit"] == limit
    assert "at most" in str(info.value)


def test_commas_inside_quoted_names_do_not_count_as_columns() -> None:
    header = ",".join(f'"name, {i}"' for i in range(11))
    check_csv_size(f"{header}\n".encode() + b"1," * 10 + b"1\n", LIMITS)


def test_inspect_reads_the_header_and_the_target_column_only() -> None:
    columns, target = inspect_csv(b"a, b ,y\n1,2,x\n3,4,z\n", "y")
    assert columns == ["a", "b", "y"]
    assert target is not None and list(target) == ["x", "z"]
    assert inspect_csv(b"a,b\n1,2\n", "y") == (["a", "b"], None)
    with pytest.raises(TrainingError):
        inspect_csv(b"a ,a\n1,2\n", "a")  # the same name once stripped


def test_limits_read_in_minutes_seconds_gib_and_mib() -> None:
    assert duration_text(600) == "10 minute"
    assert duration_text(20) == "20 second"
    assert duration_text(90) == "90 second"
    assert memory_text(2048) == "2 GiB"
    assert memory_text(300) == "300 MiB"
