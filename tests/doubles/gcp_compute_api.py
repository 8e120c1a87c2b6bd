"""Stand-in for the Google Compute Engine REST API (compute.googleapis.com/compute/v1), on loopback.

What it stands in for: the endpoints that `duoctl preflight gcp` calls through the
google-cloud-compute REST transport, answered with the JSON shapes of the real API (camelCase
fields, `items` lists, Google's error body with `error.code/message/errors[].reason`):

    GET /compute/v1/projects/{project}                                       Project (quotas,
                                                                             commonInstanceMetadata)
    GET /compute/v1/projects/{project}/regions/{region}                      Region (quotas, zones)
    GET /compute/v1/projects/{project}/zones                                 ZoneList
    GET /compute/v1/projects/{project}/zones/{zone}/machineTypes/{type}      MachineType or 404
    GET /compute/v1/projects/{project}/zones/{zone}/acceleratorTypes         AcceleratorTypeList
    GET /compute/v1/projects/{project}/zones/{zone}/instances/{instance}/getGuestAttributes
        ?queryPath=hostkeys/                                                 GuestAttributes, or
                                                                             404 until the guest
                                                                             environment wrote them
    GET  /compute/v1/projects/{project}/zones/{zone}/instances/{instance}    Instance (status,
                                                                             machineType)
    POST /compute/v1/projects/{project}/zones/{zone}/instances/{instance}/stop   Operation
    POST /compute/v1/projects/{project}/zones/{zone}/instances/{instance}/start  Operation
    GET  /compute/v1/projects/{project}/zones/{zone}/operations/{operation}      Operation

Instances are those of `world.instances` (zone, name) -> `Instance`. As on Compute Engine, stop
moves a RUNNING instance through STOPPING to TERMINATED and start a TERMINATED one through
STAGING to RUNNING (each intermediate status answers the next instances.get, then the final
one holds); stopping a TERMINATED or starting a RUNNING instance is accepted and changes
nothing; start of a STOPPING instance is refused with 400 resourceNotReady, like the real API.
The operations are answered DONE.

The paths are those of google/cloud/compute_v1/services/*/transports/rest_base.py; query
parameters (`$alt=json;enum-encoding=int`, filter, pageToken) are accepted and ignored. Point a
client at it with ``client_options={"api_endpoint": endpoint}`` and anonymous credentials.
The world it describes is a `ComputeWorld` the test builds and may change while it runs; every
request path is kept in `world.requests`.

Usage::

    world = ComputeWorld.default()           # project duo-test, europe-west4-a/b/c, T4 quota 1
    with gcp_compute_api(world) as endpoint:  # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "https://www.googleapis.com/compute/v1"
MACHINE_SPECS = {  # guestCpus, memoryMb of the real types
    "c2-standard-4": (4, 16384),
    "e2-medium": (2, 4096),
    "n1-standard-4": (4, 15360),
}
# GPU machine types, offered only in the zones a test says (Zone.machine_types); A2 and G2
# report their built-in accelerators as the real API does.
GPU_MACHINE_SPECS = {  # guestCpus, memoryMb, (accelerator type, count) built in
    "g2-standard-8": (8, 32768, ("nvidia-l4", 1)),
    "g2-standard-24": (24, 98304, ("nvidia-l4", 2)),
    "a2-highgpu-1g": (12, 87040, ("nvidia-tesla-a100", 1)),
    "a2-ultragpu-1g": (12, 174080, ("nvidia-a100-80gb", 1)),
}


@dataclass
class Zone:
    name: str
    machine_types: set[str] = field(default_factory=lambda: set(MACHINE_SPECS))
    accelerators: set[str] = field(default_factory=lambda: {"nvidia-tesla-t4"})
    status: str = "UP"


@dataclass
class Instance:
    """A VM as instances.get shows it."""

    status: str = "RUNNING"
    machine_type: str = "n1-standard-4"
    # Statuses the next instances.get calls answer, one each, before `status` holds.
    passing: list[str] = field(default_factory=list)


@dataclass
class ComputeWorld:
    """A project's view of Compute Engine: quotas, regions, zones and what each zone offers."""

    project: str
    regions: dict[str, dict[str, Zone]]
    region_quotas: dict[str, dict[str, tuple[float, float]]]  # region -> metric -> (limit, usage)
    project_quotas: dict[str, tuple[float, float]]  # metric -> (limit, usage)
    requests: list[str] = field(default_factory=list)
    # (zone, instance) -> namespace/key -> value, as the VM's guest environment publishes them
    guest_attributes: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # (zone, instance) -> the VM, for instances.get/start/stop
    instances: dict[tuple[str, str], Instance] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def default(cls, project: str = "duo-test", region: str = "europe-west4") -> ComputeWorld:
        zones = {f"{region}-{z}": Zone(f"{region}-{z}") for z in ("a", "b", "c")}
        return cls(
            project=project,
            regions={region: zones},
            region_quotas={region: {"NVIDIA_T4_GPUS": (1.0, 0.0), "CPUS": (24.0, 0.0)}},
            project_quotas={"GPUS_ALL_REGIONS": (1.0, 0.0), "CPUS_ALL_REGIONS": (32.0, 0.0)},
        )


def _quotas(quotas: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"metric": m, "limit": lim, "usage": use} for m, (lim, use) in sorted(quotas.items())]


def _instance_id(name: str) -> int:
    """A stable numeric ID per instance name, as Compute Engine gives every VM one."""
    return 1000000000000000000 + int.from_bytes(name.encode()[:7], "big")


class _Handler(BaseHTTPRequestHandler):
    world: ComputeWorld

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, what: str) -> None:
        message = f"The resource '{what}' was not found"
        error = {"message": message, "domain": "global", "reason": "notFound"}
        self._send(404, {"error": {"code": 404, "message": message, "errors": [error]}})

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        world = self.world
        world.requests.append(path)
        match = re.fullmatch(r"/compute/v1/projects/([^/]+)(/.*)?", path)
        if not match or match.group(1) != world.project:
            self._not_found(path.removeprefix("/compute/v1/"))
            return
        project, rest = match.group(1), match.group(2) or ""
        base = f"{API}/projects/{project}"
        if rest == "":
            self._send(200, self._project(base))
        elif m := re.fullmatch(r"/regions/([^/]+)", rest):
            self._region(base, m.group(1))
        elif rest == "/zones":
            items = [
                self._zone(base, region, zone)
                for region, zones in sorted(world.regions.items())
                for zone in sorted(zones.values(), key=lambda z: z.name)
            ]
            self._send(200, {"kind": "compute#zoneList", "id": base, "items": items})
        elif m := re.fullmatch(r"/zones/([^/]+)/machineTypes/([^/]+)", rest):
            self._machine_type(base, m.group(1), m.group(2))
        elif m := re.fullmatch(r"/zones/([^/]+)/acceleratorTypes", rest):
            self._accelerators(base, m.group(1))
        elif m := re.fullmatch(r"/zones/([^/]+)/instances/([^/]+)/getGuestAttributes", rest):
            self._guest_attributes(m.group(1), m.group(2))
        elif m := re.fullmatch(r"/zones/([^/]+)/instances/([^/]+)", rest):
            self._instance(base, m.group(1), m.group(2))
        elif m := re.fullmatch(r"/zones/([^/]+)/operations/([^/]+)", rest):
            operation = world.operations.get(m.group(2))
            if operation is None:
                self._not_found(path.removeprefix("/compute/v1/"))
            else:
                self._send(200, operation)
        else:
            self._not_found(path.removeprefix("/compute/v1/"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # the request body (empty for stop and start)
        world = self.world
        world.requests.append(f"POST {path}")
        match = re.fullmatch(
            r"/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)/(start|stop)", path
        )
        if not match or match.group(1) != world.project:
            self._not_found(path.removeprefix("/compute/v1/"))
            return
        project, zone, name, verb = match.groups()
        vm = world.instances.get((zone, name))
        if vm is None:
            self._not_found(f"projects/{project}/zones/{zone}/instances/{name}")
            return
        if verb == "start" and "STOPPING" in [vm.status, *vm.passing[:1]]:
            resource = f"projects/{project}/zones/{zone}/instances/{name}"
            message = f"The resource '{resource}' is not ready"
            error = {"message": message, "domain": "global", "reason": "resourceNotReady"}
            self._send(400, {"error": {"code": 400, "message": message, "errors": [error]}})
            return
        if verb == "stop" and vm.status != "TERMINATED":
            vm.status, vm.passing = "TERMINATED", ["STOPPING"]
        elif verb == "start" and vm.status == "TERMINATED":
            vm.status, vm.passing = "RUNNING", ["STAGING"]
        base = f"{API}/projects/{project}"
        number = len(world.operations) + 1
        operation_name = f"operation-{number:013d}-{verb}"
        operation = {
            "kind": "compute#operation",
            "id": str(7000000000000000000 + number),
            "name": operation_name,
            "zone": f"{base}/zones/{zone}",
            "operationType": verb,
            "targetLink": f"{base}/zones/{zone}/instances/{name}",
            "targetId": str(_instance_id(name)),
            "status": "DONE",
            "user": "duoctl-test@duo-test.iam.gserviceaccount.com",
            "progress": 100,
            "insertTime": "2026-01-01T00:00:00.000-00:00",
            "startTime": "2026-01-01T00:00:00.000-00:00",
            "endTime": "2026-01-01T00:00:01.000-00:00",
            "selfLink": f"{base}/zones/{zone}/operations/{operation_name}",
        }
        world.operations[operation_name] = operation
        self._send(200, operation)

    def _instance(self, base: str, zone: str, name: str) -> None:
        vm = self.world.instances.get((zone, name))
        if vm is None:
            self._not_found(f"projects/{self.world.project}/zones/{zone}/instances/{name}")
            return
        status = vm.passing.pop(0) if vm.passing else vm.status
        body = {
            "kind": "compute#instance",
            "id": str(_instance_id(name)),
            "name": name,
            "status": status,
            "machineType": f"{base}/zones/{zone}/machineTypes/{vm.machine_type}",
            "zone": f"{base}/zones/{zone}",
            "selfLink": f"{base}/zones/{zone}/instances/{name}",
        }
        self._send(200, body)

    def _guest_attributes(self, zone: str, instance: str) -> None:
        """Items under the query path, as GCE answers; 404 while there are none yet."""
        query = parse_qs(urlsplit(self.path).query).get("queryPath", [""])[0]
        values = self.world.guest_attributes.get((zone, instance), {})
        items = [
            {"namespace": path.partition("/")[0], "key": path.partition("/")[2], "value": value}
            for path, value in sorted(values.items())
            if path.startswith(query)
        ]
        if not items:
            self._not_found(f"projects/{self.world.project}/zones/{zone}/instances/{instance}")
            return
        body = {
            "kind": "compute#guestAttributes",
            "queryPath": query,
            "queryValue": {"items": items},
            "selfLink": f"{API}/projects/{self.world.project}/zones/{zone}/instances/{instance}",
        }
        self._send(200, body)

    def _find_zone(self, name: str) -> tuple[str, Zone] | None:
        for region, zones in self.world.regions.items():
            if name in zones:
                return region, zones[name]
        return None

    def _project(self, base: str) -> dict[str, Any]:
        return {
            "kind": "compute#project",
            "id": "4242424242",
            "name": self.world.project,
            "selfLink": base,
            "quotas": _quotas(self.world.project_quotas),
            "commonInstanceMetadata": {"kind": "compute#metadata", "items": []},
            "defaultNetworkTier": "PREMIUM",
        }

    def _zone(self, base: str, region: str, zone: Zone) -> dict[str, Any]:
        return {
            "kind": "compute#zone",
            "name": zone.name,
            "status": zone.status,
            "region": f"{base}/regions/{region}",
            "selfLink": f"{base}/zones/{zone.name}",
        }

    def _region(self, base: str, name: str) -> None:
        zones = self.world.regions.get(name)
        if zones is None:
            self._not_found(f"projects/{self.world.project}/regions/{name}")
            return
        self._send(
            200,
            {
                "kind": "compute#region",
                "name": name,
                "status": "UP",
                "quotas": _quotas(self.world.region_quotas.get(name, {})),
                "zones": [f"{base}/zones/{z}" for z in sorted(zones)],
                "selfLink": f"{base}/regions/{name}",
            },
        )

    def _machine_type(self, base: str, zone_name: str, type_name: str) -> None:
        found = self._find_zone(zone_name)
        if found is None or type_name not in found[1].machine_types:
            path = f"projects/{self.world.project}/zones/{zone_name}/machineTypes/{type_name}"
            self._not_found(path)
            return
        cpus, memory = MACHINE_SPECS.get(type_name, (2, 4096))
        body: dict[str, Any] = {
            "kind": "compute#machineType",
            "name": type_name,
            "guestCpus": cpus,
            "memoryMb": memory,
            "zone": zone_name,
            "selfLink": f"{base}/zones/{zone_name}/machineTypes/{type_name}",
        }
        if type_name in GPU_MACHINE_SPECS:
            cpus, memory, (accelerator, count) = GPU_MACHINE_SPECS[type_name]
            body.update(guestCpus=cpus, memoryMb=memory)
            body["accelerators"] = [
                {"guestAcceleratorType": accelerator, "guestAcceleratorCount": count}
            ]
        self._send(200, body)

    def _accelerators(self, base: str, zone_name: str) -> None:
        found = self._find_zone(zone_name)
        if found is None:
            self._not_found(f"projects/{self.world.project}/zones/{zone_name}")
            return
        items = [
            {
                "kind": "compute#acceleratorType",
                "name": name,
                "description": name.replace("-", " "),
                "maximumCardsPerInstance": 4,
                "zone": f"{base}/zones/{zone_name}",
                "selfLink": f"{base}/zones/{zone_name}/acceleratorTypes/{name}",
            }
            for name in sorted(found[1].accelerators)
        ]
        body = {"kind": "compute#acceleratorTypeList", "items": items}
        self._send(200, body)


@contextmanager
def gcp_compute_api(world: ComputeWorld) -> Iterator[str]:
    """Serve `world` on a free loopback port; yields the endpoint URL."""
    handler = type("Handler", (_Handler,), {"world": world})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
