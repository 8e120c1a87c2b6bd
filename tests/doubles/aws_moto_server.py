"""Stand-in for the AWS APIs (EC2, STS, IAM, Route 53, Service Quotas...): moto on loopback.

What it stands in for: the real AWS endpoints that boto3 (preflight) and the Terraform aws
provider (apply/destroy) call. It follows the AWS wire protocols as moto implements them, with
three gaps closed so the project's code sees what a real account shows:

- AMI and instance-type validation are on (``MOTO_ENABLE_AMI_VALIDATION`` and
  ``MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION``), so a bogus AMI or instance type fails as on AWS.
- Canonical's Ubuntu 24.04 (noble, amd64, hvm-ssd-gp3) AMIs, owner 099720109477, are seeded
  through ``MOTO_AMIS_PATH``; moto loads that list into every region's backend.
- moto does not implement the EC2 service quotas: ``ServiceQuotasBackend.get_service_quota`` is
  patched so that ``L-DB2E81BA`` ("Running On-Demand G and VT instances", vCPUs) and
  ``L-417A185B`` ("Running On-Demand P instances", vCPUs; 0 unless set, as on a new account)
  answer the values the test chooses, per region if wanted, with the field names of the real
  GetServiceQuota answer;
  GetAWSDefaultServiceQuota (missing from moto, called by the Terraform data source) answers the
  same document.
- Optionally, instances boot: with ``boot_seconds``, a new instance is ``pending`` for that long,
  then ``running`` (EC2's instances take tens of seconds; moto's are running at once).

The server runs in a child process (moto reads its settings when it is imported, so they must be
set before, which a test process that already imported moto cannot guarantee) on a free port of
127.0.0.1. It is stopped by its PID when the ``with`` block ends.

Usage::

    from tests.doubles.aws_moto_server import moto_server

    with moto_server(gpu_vcpu_quota=8) as endpoint_url:      # "http://127.0.0.1:PORT"
        boto3.client("ec2", endpoint_url=endpoint_url, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing")
        endpoint_url.set_gpu_vcpu_quota(0)                    # change it while running
        endpoint_url.set_gpu_vcpu_quota({"us-east-1": 0, "default": 8})
        endpoint_url.set_quota("L-417A185B", 96)             # the P instances quota

Credentials: any access key works (moto does not check them); ``AWS_CREDENTIALS`` below are the
conventional ones. By hand: ``python tests/doubles/aws_moto_server.py --port 5000``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GPU_QUOTA_CODE = "L-DB2E81BA"
GPU_QUOTA_NAME = "Running On-Demand G and VT instances"
P_QUOTA_CODE = "L-417A185B"
P_QUOTA_NAME = "Running On-Demand P instances"
QUOTA_NAMES = {GPU_QUOTA_CODE: GPU_QUOTA_NAME, P_QUOTA_CODE: P_QUOTA_NAME}
CANONICAL_OWNER_ID = "099720109477"
DEFAULT_GPU_VCPU_QUOTA = 8.0  # enough for a g4dn.xlarge (4 vCPUs) plus a spare
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

QuotaSetting = float | Mapping[str, float]

# Two releases, so a "most_recent" lookup has something to choose from.
UBUNTU_NOBLE_AMIS = [
    {
        "ami_id": "ami-0e2c8caa4b6378d8c",
        "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115",
        "creation_date": "2025-01-15T10:00:00.000Z",
    },
    {
        "ami_id": "ami-04b70fa74e45c3917",
        "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250610",
        "creation_date": "2025-06-10T10:00:00.000Z",
    },
]


def _ami_records() -> list[dict[str, Any]]:
    """The AMI list in the form moto's MOTO_AMIS_PATH expects (see moto.ec2.utils.gen_moto_amis)."""
    return [
        {
            **ami,
            "description": "Canonical, Ubuntu, 24.04, amd64 noble image",
            "owner_id": CANONICAL_OWNER_ID,
            "public": True,
            "virtualization_type": "hvm",
            "architecture": "x86_64",
            "state": "available",
            "platform": None,
            "image_type": "machine",
            "hypervisor": "xen",
            "root_device_type": "ebs",
            "root_device_name": "/dev/sda1",
            "sriov": "simple",
            "boot_mode": "uefi-preferred",
        }
        for ami in UBUNTU_NOBLE_AMIS
    ]


def _quota_document(quota: QuotaSetting) -> dict[str, float]:
    if isinstance(quota, Mapping):
        return {str(k): float(v) for k, v in quota.items()}
    return {"default": float(quota)}


class MotoEndpoint(str):
    """The endpoint URL (a str), plus a way to change the GPU quota of the running server."""

    quota_file: Path

    def __new__(cls, url: str, quota_file: Path) -> MotoEndpoint:
        obj = super().__new__(cls, url)
        obj.quota_file = quota_file
        return obj

    def set_gpu_vcpu_quota(self, quota: QuotaSetting) -> None:
        """Value of L-DB2E81BA from now on: one number, or {region: value, "default": value}."""
        self.set_quota(GPU_QUOTA_CODE, quota)

    def set_quota(self, code: str, quota: QuotaSetting) -> None:
        """Value of the vCPU quota `code` (L-DB2E81BA or L-417A185B) from now on."""
        target = _quota_file(self.quota_file, code)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(_quota_document(quota)), encoding="utf-8")
        tmp.replace(target)


def _quota_file(gpu_quota_file: Path, code: str) -> Path:
    """Where the value of quota `code` lives: the G quota in the server's quota file, the
    others beside it."""
    if code == GPU_QUOTA_CODE:
        return gpu_quota_file
    return gpu_quota_file.with_name(f"quota_{code}.json")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer on {url} within {timeout:.0f}s")


@contextmanager
def moto_server(
    gpu_vcpu_quota: QuotaSetting = DEFAULT_GPU_VCPU_QUOTA,
    start_timeout: float = 30.0,
    boot_seconds: float = 0.0,
) -> Iterator[MotoEndpoint]:
    """Run a moto server on a free loopback port; yields its endpoint URL (a MotoEndpoint)."""
    with tempfile.TemporaryDirectory(prefix="duo-moto-") as tmp:
        work = Path(tmp)
        amis_file = work / "amis.json"
        amis_file.write_text(json.dumps(_ami_records()), encoding="utf-8")
        port = free_port()
        endpoint = MotoEndpoint(f"http://127.0.0.1:{port}", work / "gpu_quota.json")
        endpoint.set_gpu_vcpu_quota(gpu_vcpu_quota)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--port", str(port)]
        cmd += ["--quota-file", str(endpoint.quota_file), "--amis-file", str(amis_file)]
        cmd += ["--boot-seconds", str(boot_seconds)]
        log = (work / "moto.log").open("wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(endpoint, proc, start_timeout)
            yield endpoint
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _patch_service_quotas(quota_file: Path) -> None:
    from moto.servicequotas.models import ServiceQuotasBackend
    from moto.servicequotas.responses import ServiceQuotasResponse

    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(
        self: ServiceQuotasBackend, service_code: str, quota_code: str
    ) -> dict[str, Any]:
        if service_code != "ec2" or quota_code not in QUOTA_NAMES:
            return original(self, service_code, quota_code)
        path = _quota_file(quota_file, quota_code)
        values = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        value = float(values.get(self.region_name, values.get("default", 0.0)))
        return {
            "ServiceCode": "ec2",
            "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": (
                f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:ec2/{quota_code}"
            ),
            "QuotaCode": quota_code,
            "QuotaName": QUOTA_NAMES[quota_code],
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    ServiceQuotasBackend.get_service_quota = get_service_quota  # type: ignore[method-assign]

    # GetAWSDefaultServiceQuota (which the Terraform data source also calls) is missing from
    # moto: it answers the same document (the applied value is the chosen one).
    def get_aws_default_service_quota(self: ServiceQuotasResponse) -> str:
        params = json.loads(self.body)
        quota = self.backend.get_service_quota(
            service_code=str(params.get("ServiceCode")), quota_code=str(params.get("QuotaCode"))
        )
        return json.dumps({"Quota": quota})

    ServiceQuotasResponse.get_aws_default_service_quota = get_aws_default_service_quota  # type: ignore[attr-defined]


def _patch_boot_time(seconds: float) -> None:
    """A new instance is "pending" for `seconds`, then "running" (unless stopped or terminated
    meanwhile), as EC2's instances are while they boot."""
    if seconds <= 0:
        return
    from moto.ec2.models.instances import Instance, InstanceState

    original = Instance.__init__

    def __init__(self: Instance, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._state = InstanceState("pending", 0)

        def booted() -> None:
            if self._state.name == "pending":
                self.start()

        timer = threading.Timer(seconds, booted)
        timer.daemon = True
        timer.start()

    Instance.__init__ = __init__  # type: ignore[method-assign]


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="moto server with the project's AWS gaps closed")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--quota-file", type=Path)
    parser.add_argument("--amis-file", type=Path)
    parser.add_argument("--boot-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.amis_file is None:
        args.amis_file = Path(tempfile.mkdtemp(prefix="duo-moto-")) / "amis.json"
        args.amis_file.write_text(json.dumps(_ami_records()), encoding="utf-8")
    if args.quota_file is None:
        args.quota_file = args.amis_file.with_name("gpu_quota.json")
        args.quota_file.write_text(json.dumps(_quota_document(DEFAULT_GPU_VCPU_QUOTA)))
    # moto reads these when it is imported: set them first.
    os.environ["MOTO_ENABLE_AMI_VALIDATION"] = "true"
    os.environ["MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION"] = "true"
    os.environ["MOTO_AMIS_PATH"] = str(args.amis_file)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    _patch_service_quotas(args.quota_file)
    _patch_boot_time(args.boot_seconds)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.* from this script
    from tests.doubles import aws_ec2_extras  # Elastic IP range, GetConsoleOutput

    aws_ec2_extras.install(args.quota_file)
    _server(args.port).serve_forever()


LINGER_SECONDS = 5.0


def _close_gracefully(conn: socket.socket) -> None:
    """Send FIN, read and discard what the client still sends until it closes (or
    LINGER_SECONDS pass), then close: no unread byte is left for the kernel to answer with RST."""
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(65536):
                break
    except OSError:
        pass  # the client is gone already (reset, timeout): nothing left to protect
    finally:
        conn.close()


class _OneCallAtATime:
    """moto's application, one call at a time.

    Each AWS call is atomic; moto's backends are plain dicts and lists that concurrent calls
    change and walk at once (a describe iterating a dict while a create inserts into it), and
    an exception there is an HTTP 500 that AWS would not give: the client retries the call,
    and a create that had been carried out fails the second time as a duplicate. Calls take
    milliseconds here, so taking them in turn costs nothing noticeable.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()


def _server(port: int) -> Any:
    """moto's application in werkzeug's threaded server (what moto's own `main` runs), with
    its settings made explicit so that a loaded machine slows the tests down instead of
    failing them:

    - one thread per connection: Terraform sends up to ten calls at once, boto3 more;
    - a listen backlog of 1024 (capped by net.core.somaxconn) instead of 128, so a burst of
      connections waits while the accept loop is starved of CPU instead of overflowing;
    - no keep-alive: werkzeug answers every request with "Connection: close" and closes the
      connection, so a client never reuses a connection the server is dropping (the race
      that makes an HTTP client see "connection reset" or "use of closed network connection");
    - a 120 s socket timeout: a client that stops mid-request frees its thread, yet no real
      request on loopback comes near it;
    - a lingering close (``_close_gracefully``): werkzeug stops draining a request 10 ms after
      its answer (``run_wsgi``), and socketserver closes the socket right after
      ``shutdown(SHUT_WR)``; request bytes still unread then, or arriving later (a body the app
      did not read, sent by a client descheduled after its headers), make Linux send RST
      instead of FIN, and the client sees "connection reset" for a call moto carried out;
    - one call at a time (``_OneCallAtATime``).

    A call that fails all the same is retried by the client (max_retries in
    tests/terraform/moto_endpoints_override.tf).
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import ThreadedWSGIServer

    class Handler(MotoRequestHandler):
        timeout = 120

    class Server(ThreadedWSGIServer):
        request_queue_size = 1024

        def shutdown_request(self, request: Any) -> None:
            _close_gracefully(request)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # as moto's own main
    app = _OneCallAtATime(DomainDispatcherApplication(create_backend_app))
    return Server("127.0.0.1", port, app, Handler)


if __name__ == "__main__":
    _serve(sys.argv[1:])
