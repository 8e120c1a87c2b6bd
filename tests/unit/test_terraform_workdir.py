"""Each deployment's own Terraform working directory: the root module copied, the user's
override files kept, backend.tf written from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from duoctl.errors import DuoctlError
from duoctl.terraform_workdir import StateBackend, check_local_state, prepare
from pydantic import ValidationError


def test_module_copied_stale_files_dropped_overrides_kept(tmp_path: Path) -> None:
    source, work = tmp_path / "module", tmp_path / "work"
    source.mkdir()
    (source / "versions.tf").write_text("terraform {}\n")
    (source / "main.tf").write_text("# main\n")
    (source / "terraform.tfvars.example").write_text("not copied\n")
    work.mkdir()
    (work / "removed_from_module.tf").write_text("# gone upstream\n")
    (work / "mine_override.tf").write_text("# the user's\n")
    prepare(source, work, StateBackend().hcl("aws", "us-east-1"))
    assert sorted(p.name for p in work.iterdir()) == [
        "backend.tf",
        "main.tf",
        "mine_override.tf",
        "versions.tf",
    ]
    assert (source / "main.tf").read_text() == "# main\n", "the module stays as it was"
    with pytest.raises(DuoctlError, match="no Terraform configuration"):
        prepare(tmp_path / "nothing", work, "")


def test_backends() -> None:
    assert "backend" not in StateBackend().hcl("aws", "us-east-1").split("#")[0]
    s3 = StateBackend(kind="s3", bucket="team-state", region="eu-west-1").hcl("staging", "x")
    assert 'backend "s3"' in s3 and 'key = "duo/staging/terraform.tfstate"' in s3
    assert 'region = "eu-west-1"' in s3 and "use_lockfile = true" in s3
    gcs = StateBackend(kind="gcs", bucket="team-state").hcl("prod", "europe-west4")
    assert 'backend "gcs"' in gcs and 'prefix = "duo/prod"' in gcs


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "s3"}, "needs its bucket"),
        ({"kind": "local", "bucket": "b-b-b"}, "need state_backend s3 or gcs"),
        ({"kind": "s3", "bucket": "Bad_Bucket"}, "should match pattern"),
        ({"kind": "s3", "bucket": "ok-bucket", "key": 'a"b'}, "should match pattern"),
    ],
)
def test_bad_backend_settings(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        StateBackend(**fields)  # type: ignore[arg-type]


def test_a_damaged_local_state_is_named_with_the_fix(tmp_path: Path) -> None:
    check_local_state(tmp_path)  # no state yet: fine
    state = tmp_path / "terraform.tfstate"
    state.write_text('{"version": 4, "resources": []}')
    check_local_state(tmp_path)
    state.write_text("")
    with pytest.raises(DuoctlError, match="is not a Terraform state") as damaged:
        check_local_state(tmp_path)
    assert "restore it from your backup" in damaged.value.fix
    (tmp_path / "terraform.tfstate.backup").write_text("{}")
    with pytest.raises(DuoctlError) as damaged:
        check_local_state(tmp_path)
    assert damaged.value.fix.startswith("restore Terraform's previous state: cp ")
