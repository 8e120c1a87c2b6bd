"""Find the terraform binary and an offline provider mirror; run terraform on a copy.

Terraform always runs on a temporary copy of terraform/<cloud>, so no
.terraform folder, lock file, state or override file lands in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.terraform.hcl_config import config_dir

AWS_PROVIDER = Path("registry.terraform.io/hashicorp/aws")
# Checked first (cheap); a full search of the root file system comes after.
MIRROR_CANDIDATES = (
    Path("/opt/tf-plugins"),
    Path("/usr/share/terraform/plugins"),
    Path("/usr/local/share/terraform/plugins"),
    Path.home() / ".terraform.d" / "plugins",
)


@dataclass(frozen=True)
class Terraform:
    binary: str
    env: dict[str, str]

    def run(
        self, workdir: Path, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, f"-chdir={workdir}", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result


def find_mirror() -> Path | None:
    """The folder holding registry.terraform.io/hashicorp/aws, or None."""
    for candidate in MIRROR_CANDIDATES:
        if (candidate / AWS_PROVIDER).is_dir():
            return candidate
    found = subprocess.run(
        ["find", "/", "-xdev", "-type", "d", "-name", "registry.terraform.io"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in found.stdout.splitlines():
        mirror = Path(line).parent
        if (mirror / AWS_PROVIDER).is_dir():
            return mirror
    return None


def cli_config(mirror: Path, folder: Path) -> Path:
    """A CLI configuration that installs providers from the mirror only."""
    path = folder / "terraform.rc"
    path.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/*/*"]\n  }\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n',
        encoding="utf-8",
    )
    return path


def terraform_env(config_file: Path | None) -> dict[str, str]:
    """The environment without the caller's AWS and Terraform settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    env["TF_CLI_CONFIG_FILE"] = str(config_file) if config_file else os.devnull
    return env


def copy_config(cloud: str, dest: Path) -> Path:
    """A clean copy of terraform/<cloud> (without any local .terraform or state)."""
    shutil.copytree(
        config_dir(cloud),
        dest,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    return dest


MOTO_OVERRIDE = Path(__file__).resolve().parent / "moto_endpoints_override.tf"


def aws_config_on_moto(endpoint: str, dest: Path) -> tuple[Path, Path] | None:
    """A copy of terraform/aws whose provider calls go to the moto server at `endpoint`, and a
    CLI configuration that installs the provider from the local mirror.

    Returns (configuration folder, CLI configuration file), or None without a provider mirror.
    The caller exports TF_CLI_CONFIG_FILE and the AWS credentials for the moto server.
    """
    mirror = find_mirror()
    if mirror is None:
        return None
    dest.mkdir(parents=True, exist_ok=True)
    workdir = copy_config("aws", dest / "aws")
    shutil.rmtree(workdir / "tests", ignore_errors=True)
    override = MOTO_OVERRIDE.read_text(encoding="utf-8").replace("MOTO_ENDPOINT", endpoint)
    (workdir / "moto_endpoints_override.tf").write_text(override, encoding="utf-8")
    return workdir, cli_config(mirror, dest)
