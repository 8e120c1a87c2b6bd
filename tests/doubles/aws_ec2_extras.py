"""Two EC2 behaviours added to the moto server double (aws_moto_server.py), for the tests that
reach the VMs' stand-ins (containers) over SSH as a deploy reaches the VMs.

What they stand in for:

- **Elastic IPs from a test range.** AllocateAddress hands out the addresses of a CIDR block
  the test chooses (``set_elastic_ip_range``) instead of moto's random ``127.x.y.z``, so that
  GitLab's "public" address is one of a Docker network the test creates. The lowest free
  address first; the block's first host address is never handed out (a Docker network's
  gateway, the host's bridge, takes it); an address is not handed out twice while the server
  runs unless every other one is in use; a full block fails as AWS does
  (``AddressLimitExceeded``). An address the caller names (``Address``) is kept. Without a
  range: moto's own addresses.
- **GetConsoleOutput.** cloud-init prints a VM's SSH host keys to its console at first boot;
  a deploy reads them back with GetConsoleOutput. The double answers, per instance, the text
  the test set (``set_console_output``), in EC2's shape: ``InstanceId``, ``Timestamp`` (when
  the text was set) and ``Output``, the text base64-encoded (its last 64 KB, as EC2 keeps no
  more). Before any text is set, ``Output`` is absent, which is EC2's answer for an instance
  that has not posted console output yet. ``Latest`` is accepted; the answer is the same. An
  unknown instance fails with ``InvalidInstanceID.NotFound`` (moto's check).
- **RunInstances is idempotent by ClientToken**, as EC2 is: a request repeated with the token
  of an earlier one (an SDK retrying after a timeout on a loaded machine) answers the earlier
  reservation instead of launching more instances. moto launches again otherwise.

The server runs in a child process: these setters write files in a folder beside the
server's own files, which the server reads on each request (so they apply at once).

Usage::

    from tests.doubles.aws_ec2_extras import set_console_output, set_elastic_ip_range

    with moto_server() as endpoint:
        set_elastic_ip_range(endpoint, "10.213.250.0/24")   # before the addresses are made
        ...                                                  # terraform apply, run_instances
        set_console_output(endpoint, instance_id, text)
        boto3.client("ec2", endpoint_url=endpoint, ...).get_console_output(InstanceId=...)

The server side is installed by ``install(quota_file)`` in the server's process.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONSOLE_OUTPUT_LIMIT = 64 * 1024  # bytes of console output EC2 keeps
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,32}$")
RANGE_FILE = "elastic_ip_range"
CONSOLE_DIR = "console"


def _folder_beside(server_file: Path) -> Path:
    """The folder the setters and the server share: beside the server's quota file."""
    return Path(server_file).parent / "ec2-extras"


def state_folder(endpoint: Any) -> Path:
    """The folder shared with the server of `endpoint` (a MotoEndpoint)."""
    return _folder_beside(endpoint.quota_file)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def set_elastic_ip_range(endpoint: Any, cidr: str | None) -> None:
    """Elastic IPs allocated from now on come from `cidr` (None: moto's own addresses)."""
    path = state_folder(endpoint) / RANGE_FILE
    if cidr is None:
        path.unlink(missing_ok=True)
        return
    network = ipaddress.IPv4Network(cidr)
    if network.num_addresses < 4:
        raise ValueError(f"{cidr}: too small for a gateway and an address")
    _write(path, str(network).encode())


def set_console_output(endpoint: Any, instance_id: str, text: str) -> None:
    """GetConsoleOutput of `instance_id` answers `text` from now on (time stamped now)."""
    if not INSTANCE_ID.match(instance_id):
        raise ValueError(f"not an EC2 instance ID: {instance_id!r}")
    _write(state_folder(endpoint) / CONSOLE_DIR / instance_id, text.encode())


# --- server side ----------------------------------------------------------------------------

_handed_out: set[str] = set()


def _next_address(folder: Path, backend: Any) -> str | None:
    range_file = folder / RANGE_FILE
    if not range_file.is_file():
        return None
    hosts = [str(ip) for ip in ipaddress.IPv4Network(range_file.read_text().strip()).hosts()]
    candidates = hosts[1:]  # the first is the network's gateway
    in_use = {address.public_ip for address in backend.addresses}
    free = [ip for ip in candidates if ip not in in_use]
    if not free:
        from moto.ec2.exceptions import EC2ClientError

        raise EC2ClientError(
            "AddressLimitExceeded", "The maximum number of addresses has been reached."
        )
    chosen = next((ip for ip in free if ip not in _handed_out), free[0])
    _handed_out.add(chosen)
    return chosen


def _console_answer(folder: Path, instance_id: str) -> dict[str, Any]:
    from moto.core.types import Base64EncodedString

    answer: dict[str, Any] = {"InstanceId": instance_id}
    path = folder / CONSOLE_DIR / instance_id
    if INSTANCE_ID.match(instance_id) and path.is_file():
        raw = path.read_bytes()[-CONSOLE_OUTPUT_LIMIT:]
        answer["Timestamp"] = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).replace(
            tzinfo=None
        )
        answer["Output"] = Base64EncodedString.from_encoded_bytes(base64.b64encode(raw))
    else:
        answer["Timestamp"] = datetime.now(tz=UTC).replace(tzinfo=None)
    return answer


def install(quota_file: Path) -> None:
    """Patch moto, in the server's process, to answer what the setters wrote (beside
    `quota_file`, the server's GPU quota file)."""
    folder = _folder_beside(quota_file)
    from moto.core.responses import ActionResult
    from moto.ec2.models.elastic_ip_addresses import ElasticAddress
    from moto.ec2.responses.general import General

    original_init = ElasticAddress.__init__

    def init(
        self: ElasticAddress,
        ec2_backend: Any,
        domain: str,
        address: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        address = address or _next_address(folder, ec2_backend)
        original_init(self, ec2_backend, domain, address=address, tags=tags)

    ElasticAddress.__init__ = init  # type: ignore[method-assign]

    def get_console_output(self: General) -> ActionResult:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        return ActionResult(_console_answer(folder, instance.id))

    General.get_console_output = get_console_output  # type: ignore[method-assign]
    _idempotent_run_instances()


def _idempotent_run_instances() -> None:
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances
    launched: dict[tuple[int, str], Any] = {}  # (backend, client token) -> reservation

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        if not token or token == "ABCDE":  # moto's default when the request has none
            return original(self, *args, **kwargs)
        key = (id(self), str(token))
        if key not in launched:
            launched[key] = original(self, *args, **kwargs)
        return launched[key]

    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
