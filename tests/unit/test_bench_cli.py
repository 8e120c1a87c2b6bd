"""duoctl bench on the command line: bad input exits 2 naming the problem and the fix, never
a traceback; Ctrl-C exits 130; --compare reads saved runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from duoctl.bench import command, results
from duoctl.bench.load import Ramp
from duoctl.bench.recommend import ServingFacts
from duoctl.bench.run import assemble
from duoctl.cli import main


def err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--levels", "1,x"], "--levels '1,x' is not a list of whole numbers"),
        (["--levels", "4,2"], "must rise, each level once"),
        (["--levels", "0,1"], "each level must be between 1 and 1024"),
        (["--levels", ","], "each level must be between 1 and 1024"),
        (["--timeout", "0"], "--timeout 0 must be more than 0 seconds"),
        (["--target-p95", "-1"], "--target-p95 -1 must be more than 0 seconds"),
        (["--level-seconds", "0"], "--level-seconds 0 must be more than 0 seconds"),
        (["--requests", "0"], "--requests 0 must be at least 1"),
        (["--gitlab-url", "http://gitlab.lab"], "is not an https:// URL"),
        (["--ca-file", "no-such-ca.crt"], "--ca-file no-such-ca.crt is not a readable file"),
    ],
)
def test_bad_input_exits_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--deploy-dir", str(tmp_path), "--name", "lab", *args]) == 2
    text = err(capsys)
    assert message in text and "fix: " in text and "Traceback" not in text


def test_no_deployment_to_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--deploy-dir", str(tmp_path)]) == 2
    assert "holds 0 deployments with an inventory" in err(capsys)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "inventory.yml").write_text("all: {}\n")
    assert main(["bench", "--deploy-dir", str(tmp_path)]) == 2
    assert "(a, b)" in err(capsys)


def test_a_named_deployment_without_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--deploy-dir", str(tmp_path), "--name", "lab"]) == 2
    assert "cannot read the inventory" in err(capsys)


def test_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--deploy-dir", str(tmp_path), "--name", "Bad Name"]) == 2
    assert "deployment name 'Bad Name' is not valid" in err(capsys)


def test_ctrl_c_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "inventory.yml").write_text("all: {}\n")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "bench_deployment", interrupted)
    assert main(["bench", "--deploy-dir", str(tmp_path)]) == 130
    assert "interrupted" in err(capsys)


def saved_run(where: Path, started_at: str) -> Path:
    run = assemble("lab", ServingFacts("ollama"), None, Ramp(), [], started_at)
    return results.save(run, [], where / started_at)


def test_compare_by_folder_or_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "lab" / "bench"
    a, b = saved_run(bench, "20261201T060000Z"), saved_run(bench, "20261201T070000Z")
    (tmp_path / "lab" / "inventory.yml").write_text("all: {}\n")
    assert main(["bench", "--compare", str(a), str(b)]) == 0
    assert "20261201T060000Z -> 20261201T070000Z" in capsys.readouterr().out
    by_name = ["bench", "--deploy-dir", str(tmp_path), "--name", "lab", "--json"]
    assert main([*by_name, "--compare", a.name, b.name]) == 0
    assert json.loads(capsys.readouterr().out)["after"] == "20261201T070000Z"


def test_compare_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab").mkdir()
    args = ["bench", "--deploy-dir", str(tmp_path), "--name", "lab"]
    assert main([*args, "--compare", "20990101T000000Z", "20990101T000001Z"]) == 2
    text = err(capsys)
    assert "cannot read the bench run" in text and "fix: " in text


def test_help_lists_bench(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "--target-p95" in out and "--compare A B" in out
