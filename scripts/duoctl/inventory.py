"""`duoctl inventory`: a deployment's Terraform outputs -> its Ansible inventory and ssh_config.

The outputs have the same names on every cloud. The GitLab VM is reached on its public IP; the
AI gateway and Ollama VMs on their private IPs, through the GitLab VM (SSH ProxyJump, set in
the deployment's ssh_config, which also names its known_hosts). The files are written from the
typed deployment (duoctl.deployment), never from a template: the same outputs give the same
files, and a re-run that changes nothing leaves them untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from duoctl.deployment import Deployment, Target, plain_values
from duoctl.errors import EXIT_OK, DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.terraform_workdir import check_local_state


def write_text(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write atomically; True when the file changed. A folder or an unwritable place in the
    way is bad input, named."""
    fix = "move it away, or choose another --deploy-dir"
    if path.exists() and not path.is_file():
        raise DuoctlError(f"cannot write {path}: something else than a file is there", fix)
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise DuoctlError(f"cannot write {path}: {exc.strerror}", fix) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_files(deployment: Deployment, folder: DeploymentFolder, identity: str | None) -> bool:
    """The inventory and the ssh_config of the deployment; True when either changed."""
    ssh = write_text(
        folder.ssh_config, deployment.ssh_config_text(folder.known_hosts, identity), 0o600
    )
    inventory = write_text(folder.inventory, deployment.inventory_text(folder.ssh_config))
    return ssh or inventory


def load_outputs_file(path: Path) -> dict[str, object]:
    """A saved `terraform output -json` document."""
    fix = "save it with: terraform -chdir=.deploy/NAME/terraform output -json > FILE"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DuoctlError(f"cannot read {path}: {exc.strerror}", fix) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DuoctlError(f"{path} is not a terraform output -json document ({exc})", fix) from None
    if not isinstance(data, dict):
        raise DuoctlError(f"{path} must hold a JSON object of outputs", fix)
    return plain_values(data)


@dataclass(frozen=True)
class InventoryOptions:
    cloud: Target
    folder: DeploymentFolder
    from_json: Path | None = None  # saved outputs instead of the deployment's Terraform state
    ssh_key: str | None = None  # private key named in ssh_config


def run(options: InventoryOptions) -> int:
    """`duoctl inventory {aws|gcp} [--name NAME] [--from-json FILE]`."""
    from duoctl import terraform

    folder = options.folder
    if options.from_json:
        outputs = load_outputs_file(options.from_json)
    else:
        if not (folder.terraform_dir / "backend.tf").is_file():
            raise DuoctlError(
                f"the deployment {folder.name} has no Terraform working directory yet "
                f"({folder.terraform_dir})",
                f"deploy it first (duoctl deploy {options.cloud} --name {folder.name}), or pass "
                "saved outputs with --from-json FILE",
            )
        check_local_state(folder.terraform_dir)
        try:
            outputs = terraform.outputs(folder.terraform_dir)
        except terraform.TerraformError as exc:
            raise DuoctlError(str(exc), "", exit_code=1) from None
    deployment = Deployment.from_outputs(outputs, options.cloud)
    changed = write_files(deployment, folder, options.ssh_key)
    print(f"{folder.inventory}: {'written' if changed else 'unchanged'}")
    record = plain_values(outputs).get("dns_record_needed")
    if record:
        print(f"Create this DNS record before deploying GitLab: {record}")
    return EXIT_OK
