"""The Terraform calls (init, apply, output, destroy) through python-terraform.

init, apply and destroy take an optional `sink` that receives each output line as it comes
(the deploy's progress tail). Every failure becomes a TerraformError naming the command that
failed, the last lines of its error output and, when the cause is a known one, the fix.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged, Terraform

from duoctl import process

CLOUDS = ("aws", "gcp")
STDERR_TAIL_LINES = 25  # from the first "Error:" line on

# python-terraform logs the whole error output as a warning; TerraformError carries it instead.
logging.getLogger("python_terraform").setLevel(logging.ERROR)

# Substring of Terraform's error output -> what the user should do about it.
KNOWN_FIXES: tuple[tuple[str, str], ...] = (
    (
        "No valid credential sources found",
        "configure AWS credentials (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY)",
    ),
    (
        "could not find default credentials",
        "log in for Terraform: gcloud auth application-default login",
    ),
    (
        "VcpuLimitExceeded",
        "raise the GPU quota: aws service-quotas request-service-quota-increase "
        "--service-code ec2 --quota-code L-DB2E81BA --desired-value 4",
    ),
    (
        "GPUS_ALL_REGIONS",
        "request the Google Cloud quotas GPUS_ALL_REGIONS and NVIDIA_T4_GPUS (at least 1)",
    ),
    (
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "the zone has no capacity right now: set zone to another zone offering the GPU",
    ),
    (
        "No value for required variable",
        "set the required variables in terraform.tfvars (see terraform/README.md)",
    ),
    (
        "InvalidPermission.Duplicate",
        "an interrupted apply created this firewall rule without recording it: delete the rule "
        "named above (EC2 console, the security group's rules) and run again",
    ),
    (
        "Error acquiring the state lock",
        "another Terraform run holds the state; wait for it, or terraform force-unlock LOCK_ID",
    ),
    (
        "Failed to query available provider packages",
        "the provider registry is unreachable: check the network or configure a provider mirror",
    ),
    (
        "Backend initialization required",
        "run the init step first (terraform init)",
    ),
)


OutputSink = Callable[[str], None]


class TerraformError(RuntimeError):
    """A Terraform command failed; the message says which, why and (if known) the fix."""


class _StreamingTerraform(Terraform):  # type: ignore[misc]
    """python-terraform's client, with each output line also handed to `sink` as it comes.

    python-terraform builds the command line (and the temporary -var-file); only running it
    differs: output and error output are read as one stream, line by line, so a long apply
    shows where it is. The result keeps the library's (code, out, err) shape. Ctrl-C (or
    SIGTERM) stops Terraform cleanly, its state saved and its lock released, then raises
    `process.Interrupted` (see duoctl.process).
    """

    def __init__(self, working_dir: str, sink: OutputSink) -> None:
        super().__init__(working_dir=working_dir)
        self.sink = sink

    def cmd(self, cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
        kwargs.pop("capture_output", None)
        command = self.generate_cmd_string(cmd, *args, **kwargs)
        lines: list[str] = []

        def sink(line: str) -> None:
            lines.append(line)
            self.sink(line)

        try:
            code = process.run(command, sink, cwd=self.working_dir)
        finally:
            self.temp_var_files.clean_up()
        text = "\n".join(lines)
        return code, text, text


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def terraform_dir(cloud: str) -> Path:
    """The repository's Terraform configuration for one cloud (terraform/<cloud>)."""
    if cloud not in CLOUDS:
        raise TerraformError(f"unknown cloud {cloud!r}: choose one of {', '.join(CLOUDS)}")
    path = repo_root() / "terraform" / cloud
    if not (path / "versions.tf").is_file():
        raise TerraformError(f"no Terraform configuration in {path}: is the repository complete?")
    return path


def _hint(stderr: str) -> str:
    for needle, fix in KNOWN_FIXES:
        if needle in stderr:
            return f"\nFix: {fix}"
    return ""


def _client(workdir: Path, sink: OutputSink | None = None) -> Terraform:
    """The client for one directory; with `sink`, the output goes to it line by line."""
    if shutil.which("terraform") is None:
        raise TerraformError(
            "terraform is not on PATH: install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install)"
        )
    if sink is not None:
        return _StreamingTerraform(str(workdir), sink)
    return Terraform(working_dir=str(workdir))


def _check(result: tuple[int, str | None, str | None], command: str, workdir: Path) -> str:
    code, out, err = result
    if code == 0:
        return out or ""
    lines = (err or out or "").strip().splitlines()
    first_error = next((i for i, line in enumerate(lines) if line.startswith("Error:")), 0)
    tail = "\n".join(lines[first_error : first_error + STDERR_TAIL_LINES])
    raise TerraformError(
        f"terraform {command} failed in {workdir} (exit {code}):\n{tail}{_hint(err or '')}"
    )


def init(workdir: Path, sink: OutputSink | None = None) -> None:
    """terraform init (providers and backend); safe to repeat."""
    tf = _client(workdir, sink)
    _check(tf.init(reconfigure=IsNotFlagged, upgrade=False), "init", workdir)


def _given(variables: Mapping[str, object]) -> dict[str, object]:
    """None means "not given": the configuration's default (or terraform.tfvars) applies."""
    return {name: value for name, value in variables.items() if value is not None}


def apply(workdir: Path, variables: Mapping[str, object], sink: OutputSink | None = None) -> None:
    """terraform apply -auto-approve with the given variables (plus terraform.tfvars)."""
    tf = _client(workdir, sink)
    _check(tf.apply(skip_plan=True, var=_given(variables)), "apply", workdir)


def outputs(workdir: Path) -> dict[str, Any]:
    """The plain values of terraform output -json (empty when nothing was applied)."""
    tf = _client(workdir)
    out = _check(tf.output_cmd(json=IsFlagged), "output -json", workdir)
    try:
        raw = json.loads(out or "{}")
    except json.JSONDecodeError as exc:
        raise TerraformError(f"terraform output -json in {workdir} gave no JSON: {exc}") from exc
    return {name: item["value"] for name, item in raw.items()}


def destroy(workdir: Path, variables: Mapping[str, object], sink: OutputSink | None = None) -> None:
    """terraform destroy -auto-approve with the given variables."""
    tf = _client(workdir, sink)
    # python-terraform passes -force by default, which Terraform 1.x removed.
    result = tf.destroy(force=IsNotFlagged, auto_approve=IsFlagged, var=_given(variables))
    _check(result, "destroy", workdir)
