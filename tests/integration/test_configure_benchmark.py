"""Prints the request counts of the configure benchmark and checks its goal."""

from __future__ import annotations

import pytest

from tests.benchmarks.configure_requests import NOOP_REQUEST_BUDGET, measure, report


@pytest.mark.parametrize("version", ["19.4.1-ee", "18.9.0-ee", "17.9.3-ee"])
def test_request_counts(version: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = measure(version)
    with capsys.disabled():
        print("\n" + report([first, second], version))
    assert first.mutations > 0
    assert second.mutations == 0
    assert second.requests <= NOOP_REQUEST_BUDGET
