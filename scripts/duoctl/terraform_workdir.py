"""Each deployment's own Terraform working directory: `.deploy/<name>/terraform/`.

The repository's root module (terraform/<cloud>) stays read-only: its `*.tf` files are copied
into the deployment's folder before every run, with a generated `backend.tf` naming where the
state lives (local by default, in that folder; S3 with a lock file, or GCS, for teams). Files
the user adds there whose names end in `_override.tf` are kept: Terraform merges them in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duoctl.errors import DuoctlError

BACKEND_FILE = "backend.tf"


class StateBackend(BaseModel):
    """Where a deployment's Terraform state lives: `local` (the deployment folder), or a
    bucket: S3 (native lock file, encrypted) or GCS (locks itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "s3", "gcs"] = "local"
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,500}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    @model_validator(mode="after")
    def _bucket_for_remote(self) -> StateBackend:
        if self.kind != "local" and not self.bucket:
            raise ValueError(f"a {self.kind} state backend needs its bucket (state_bucket)")
        if self.kind == "local" and (self.bucket or self.key):
            raise ValueError("state_bucket and state_key need state_backend s3 or gcs")
        return self

    def hcl(self, name: str, region: str) -> str:
        """The backend block for deployment `name` (state key duo/<name>/...)."""
        if self.kind == "local":
            return "# The state is local: terraform.tfstate beside this file.\n"
        key = self.key or f"duo/{name}/terraform.tfstate"
        settings: dict[str, object]
        if self.kind == "s3":
            settings = {
                "bucket": self.bucket,
                "key": key,
                "region": self.region or region,
                "encrypt": True,
                "use_lockfile": True,
            }
        else:
            settings = {"bucket": self.bucket, "prefix": key.removesuffix("/terraform.tfstate")}
        body = "".join(f"    {k} = {json.dumps(v)}\n" for k, v in settings.items())
        return f'terraform {{\n  backend "{self.kind}" {{\n{body}  }}\n}}\n'


def check_local_state(workdir: Path) -> None:
    """A local state file that is not JSON is bad input, named before Terraform runs."""
    state = workdir / "terraform.tfstate"
    try:
        text = state.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no state yet (or no folder at all)
        return
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        text, problem = "", f"cannot be read: {reason}"
    else:
        problem = "is not a Terraform state (not JSON)"
    try:
        if text:
            json.loads(text)
            return
    except ValueError:
        pass
    backup = state.with_name("terraform.tfstate.backup")
    fix = (
        f"restore Terraform's previous state: cp {backup} {state}"
        if backup.is_file()
        else "restore it from your backup; without a state Terraform no longer knows the VMs "
        "(remove them in the cloud console, then delete the file)"
    )
    raise DuoctlError(f"the Terraform state {state} {problem}", fix)


def prepare(source: Path, workdir: Path, backend_hcl: str) -> None:
    """Copy the root module's *.tf into `workdir`, drop module files the source no longer has
    (keeping the user's *_override.tf), and write backend.tf."""
    if not (source / "versions.tf").is_file():
        raise DuoctlError(
            f"no Terraform configuration in {source}", "run duoctl from a complete checkout"
        )
    wanted = {p.name: p for p in source.glob("*.tf")}
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("*.tf"):
            keep = old.name in wanted or old.name.endswith("_override.tf")
            if not keep and old.name != BACKEND_FILE:
                old.unlink()
        for name, path in wanted.items():
            shutil.copyfile(path, workdir / name)
        lock = source / ".terraform.lock.hcl"
        if lock.is_file():
            shutil.copyfile(lock, workdir / lock.name)
        backend = workdir / BACKEND_FILE
        if not backend.is_file() or backend.read_text(encoding="utf-8") != backend_hcl:
            backend.write_text(backend_hcl, encoding="utf-8")
    except OSError as exc:
        raise DuoctlError(
            f"cannot write the Terraform working directory {workdir}: {exc.strerror}",
            "make the deployment folder writable",
        ) from None
