"""Both configurations against their provider schema, and the security invariants on the
parsed configuration (python-hcl2). No terraform binary or provider needed: these run
everywhere, and are the only checks of terraform/gcp that this machine can make."""

from __future__ import annotations

import re
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from tests.terraform.hcl_config import (
    check_block,
    config_dir,
    load_config,
    locals_of,
    named,
    provider_schema,
    schema_errors,
)

CLOUDS = ["aws", "gcp"]
OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False)
PROVIDERS = {"aws": ("aws", "5.100.0"), "gcp": ("google", "6.50.0")}
OUTPUTS = {
    "cloud",
    "gitlab_public_ip",
    "gitlab_private_ip",
    "gateway_private_ip",
    "ollama_private_ip",
    "gitlab_domain",
    "gitlab_url",
    "ssh_user",
    "dns_record_needed",
}
SHARED_VARIABLES = [
    "gitlab_domain",
    "admin_cidrs",
    "ssh_public_key",
    "prefix",
    "ollama_port",
    "model_port",
]


def _provider_schema(cloud: str) -> dict[str, Any]:
    schema = provider_schema(cloud)
    if schema is None:
        pytest.fail(
            f"{PROVIDERS[cloud][0]} provider schema missing from tests/terraform/schemas/ "
            "(it is part of the repository: restore it with git)"
        )
    assert schema is not None
    return schema


def _version_admits(constraint: str, version: str) -> bool:
    """Evaluate a Terraform version constraint made of >=, >, <=, <, = and ~> terms."""

    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    wanted = parts(version)
    for term in constraint.split(","):
        op, ver = re.fullmatch(r"\s*(>=|<=|~>|>|<|=|!=)?\s*([\d.]+)\s*", term).groups()  # type: ignore[union-attr]
        bound = parts(ver)
        padded = bound + (0,) * (len(wanted) - len(bound))
        ok = {
            ">=": wanted >= padded,
            ">": wanted > padded,
            "<=": wanted <= padded,
            "<": wanted < padded,
            "!=": wanted != padded,
            "~>": wanted >= padded and wanted[: len(bound) - 1] == bound[:-1],
        }.get(op or "=", wanted == padded)
        if not ok:
            return False
    return True


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_resource_argument_and_block_is_in_the_provider_schema(cloud: str) -> None:
    _provider_schema(cloud)
    assert schema_errors(cloud) == []


def test_schema_checker_catches_mistakes() -> None:
    schema = _provider_schema("gcp")["resource_schemas"]["google_compute_instance"]["block"]
    body = {
        "name": "x",
        "machine_type": "e2-medium",
        "zone_name": "typo",
        "self_link": "computed only",
        "scheduling": [{"on_host_maintenance": "TERMINATE", "__is_block__": True}] * 2,
        "__is_block__": True,
    }
    errors = "\n".join(check_block(body, schema, "vm", True))
    assert "unknown argument zone_name" in errors
    assert "self_link is computed only" in errors
    assert "block boot_disk needs at least 1" in errors
    assert "block scheduling allows at most 1" in errors


@pytest.mark.parametrize("cloud", CLOUDS)
def test_provider_pin_admits_the_reference_version(cloud: str) -> None:
    name, version = PROVIDERS[cloud]
    terraform_block = load_config(cloud)["terraform"][0]
    assert _version_admits(terraform_block["required_version"], "1.6.0")
    providers = terraform_block["required_providers"][0]
    assert providers[name]["source"] == f"hashicorp/{name}"
    constraint = providers[name]["version"]
    assert _version_admits(constraint, version), constraint
    major = int(version.split(".")[0])
    assert not _version_admits(constraint, f"{major + 1}.0.0"), "pin the major version"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_variables_have_type_and_description(cloud: str) -> None:
    for name, body in named(load_config(cloud), "variable").items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    required = {n for n, b in named(load_config(cloud), "variable").items() if "default" not in b}
    expected = {"gitlab_domain", "admin_cidrs", "ssh_public_key"}
    assert required == (expected | {"project_id"} if cloud == "gcp" else expected)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_outputs_are_the_contract_and_hold_no_secret(cloud: str) -> None:
    outputs = named(load_config(cloud), "output")
    assert set(outputs) >= OUTPUTS
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} has no description"
        assert "sensitive" not in body, f"output {name} must not be (or carry) a secret"
        assert "ssh_public_key" not in str(body["value"]), f"output {name} leaks the SSH key"
    assert outputs["cloud"]["value"] == cloud
    assert outputs["gitlab_url"]["value"] == "https://${var.gitlab_domain}"


@pytest.mark.parametrize("name", SHARED_VARIABLES)
def test_shared_variables_validate_the_same_way(name: str) -> None:
    """terraform test proves the AWS validations; GCP must use the very same rules."""
    aws = named(load_config("aws"), "variable")[name]
    gcp = named(load_config("gcp"), "variable")[name]
    assert aws.get("validation") == gcp.get("validation")
    assert aws["type"] == gcp["type"]


def test_gcp_ingress_matrix_is_least_privilege() -> None:
    rules = locals_of("gcp")["ingress_rules"]
    matrix = {
        key: (
            rule["role"],
            tuple(str(p) for p in rule["ports"]),
            str(rule["source_ranges"]),
            rule["source_role"],
        )
        for key, rule in rules.items()
    }
    assert matrix == {
        "gitlab_web": ("gitlab", ("80", "443"), "['${local.anywhere}']", None),
        "gitlab_ssh": ("gitlab", ("22",), "${var.admin_cidrs}", None),
        "gateway_api": (
            "ai_gateway",
            ("${var.gateway_port}", "${var.gateway_grpc_port}"),
            "None",
            "gitlab",
        ),
        "gateway_ssh": ("ai_gateway", ("22",), "None", "gitlab"),
        "ollama_api": ("ollama", ("${local.model_port}",), "None", "ai_gateway"),
        "ollama_ssh": ("ollama", ("22",), "None", "gitlab"),
        "gateway_metrics": (
            "ai_gateway",
            ("${var.metrics_ports.node_exporter}", "${var.metrics_ports.gateway}"),
            "None",
            "gitlab",
        ),
        "ollama_metrics": (
            "ollama",
            ("${var.metrics_ports.node_exporter}", "${local.model_port}"),
            "None",
            "gitlab",
        ),
    }
    assert locals_of("gcp")["anywhere"] == "0.0.0.0/0"
    firewall = named(load_config("gcp"), "resource")["google_compute_firewall.ingress"]
    assert firewall["for_each"] == "${local.ingress_rules}"
    assert firewall["direction"] == "INGRESS"
    assert firewall["target_tags"] == ["${local.tag[each.value.role]}"]
    assert firewall["allow"][0]["protocol"] == "tcp"
    ingress = [
        b
        for k, b in named(load_config("gcp"), "resource").items()
        if k.startswith("google_compute_firewall.") and b.get("direction") != "EGRESS"
    ]
    assert ingress == [firewall], "every ingress rule must come from the matrix"


def test_gcp_egress_is_denied_but_for_the_needed_ports() -> None:
    resources = named(load_config("gcp"), "resource")
    deny = resources["google_compute_firewall.egress_deny_all"]
    assert deny["direction"] == "EGRESS" and deny["deny"][0]["protocol"] == "all"
    assert deny["destination_ranges"] == ["${local.anywhere}"]
    assert deny["target_tags"] == "${values(local.tag)}"
    egress = locals_of("gcp")["egress_rules"]
    assert egress["internet"]["ports"] == "${var.egress_ports}"
    assert named(load_config("gcp"), "variable")["egress_ports"]["default"] == [80, 443]
    assert all(
        r["destination_ranges"] == ["${var.subnet_cidr}"]
        for k, r in egress.items()
        if k != "internet"
    )


def test_gcp_backup_bucket_is_private_versioned_and_only_gitlab_writes() -> None:
    resources = named(load_config("gcp"), "resource")
    bucket = resources["google_storage_bucket.backups"]
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["versioning"][0]["enabled"] is True
    assert bucket["force_destroy"] is False
    assert bucket["lifecycle_rule"][0]["condition"][0]["age"] == "${var.backup_retention_days}"
    grants = resources["google_storage_bucket_iam_member.gitlab_backups"]
    assert grants["member"] == "serviceAccount:${google_service_account.gitlab.email}"
    assert grants["for_each"] == (
        '${toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])}'
    )
    iam = [k for k in resources if "iam" in k]
    assert sorted(iam) == [
        "google_project_iam_custom_role.gpu_schedule",
        "google_project_iam_member.gpu_schedule",
        "google_storage_bucket_iam_member.gitlab_backups",
    ]
    vm = resources["google_compute_instance.vm"]
    assert vm["dynamic"][1]["service_account"]["for_each"] == (
        '${each.key == "gitlab" ? [google_service_account.gitlab.email] : []}'
    )


def test_gcp_gpu_schedule_is_the_clouds_own_and_grants_only_start_and_stop() -> None:
    resources = named(load_config("gcp"), "resource")
    policy = resources["google_compute_resource_policy.gpu_schedule"]
    assert policy["count"] == "${local.gpu_scheduled ? 1 : 0}"
    schedule = policy["instance_schedule_policy"][0]
    assert schedule["vm_start_schedule"][0]["schedule"] == "${var.gpu_schedule.start}"
    assert schedule["vm_stop_schedule"][0]["schedule"] == "${var.gpu_schedule.stop}"
    role = resources["google_project_iam_custom_role.gpu_schedule"]
    assert role["permissions"] == ["compute.instances.start", "compute.instances.stop"]
    member = resources["google_project_iam_member.gpu_schedule"]["member"]
    assert member.endswith("@compute-system.iam.gserviceaccount.com")
    vm = resources["google_compute_instance.vm"]
    assert "each.value.gpu && local.gpu_scheduled" in vm["resource_policies"]


def test_gcp_only_gitlab_has_an_external_address() -> None:
    vms = locals_of("gcp")["vms"]
    assert {role: vm["public"] for role, vm in vms.items()} == {
        "gitlab": True,
        "ai_gateway": False,
        "ollama": False,
    }
    instance = named(load_config("gcp"), "resource")["google_compute_instance.vm"]
    assert instance["for_each"] == "${local.vms}"
    nic = instance["network_interface"][0]
    assert "access_config" not in nic, "access_config must be dynamic on each.value.public"
    access = nic["dynamic"][0]["access_config"]
    assert (
        access["for_each"] == "${each.value.public ? [google_compute_address.gitlab.address] : []}"
    )
    assert "can_ip_forward" not in instance, "no VM forwards packets"


def test_gcp_gpu_vm_shape() -> None:
    vms = locals_of("gcp")["vms"]
    assert [role for role, vm in vms.items() if vm["gpu"]] == ["ollama"]
    variables = named(load_config("gcp"), "variable")
    assert variables["ollama_machine_type"]["default"] == "n1-standard-4"
    assert variables["ollama_gpu_type"]["default"] == "nvidia-tesla-t4"
    assert variables["gitlab_machine_type"]["default"] == "c2-standard-4"
    assert variables["gateway_machine_type"]["default"] == "e2-medium"
    assert [variables[f"{r}_disk_gb"]["default"] for r in ("gitlab", "gateway", "ollama")] == [
        50,
        20,
        50,
    ]
    instance = named(load_config("gcp"), "resource")["google_compute_instance.vm"]
    accel = instance["dynamic"][0]["guest_accelerator"]
    assert accel["for_each"] == "${each.value.gpu ? [local.gpu] : []}"
    assert accel["content"][0]["count"] == "${guest_accelerator.value.count}"
    assert variables["ollama_gpu_count"]["default"] == 1
    assert locals_of("gcp")["gpu"] == {
        "type": "${var.ollama_gpu_type}",
        "count": "${var.ollama_gpu_count}",
    }
    scheduling = instance["scheduling"][0]
    assert scheduling["on_host_maintenance"] == '${each.value.gpu ? "TERMINATE" : "MIGRATE"}'
    assert scheduling["preemptible"] is False


def test_gcp_instances_are_hardened_and_labelled() -> None:
    instance = named(load_config("gcp"), "resource")["google_compute_instance.vm"]
    shielded = instance["shielded_instance_config"][0]
    assert shielded["enable_vtpm"] is True and shielded["enable_integrity_monitoring"] is True
    assert shielded["enable_secure_boot"] == "${each.value.secure_boot}"
    metadata = instance["metadata"]
    assert metadata["block-project-ssh-keys"] == "true"
    assert metadata["serial-port-enable"] == "false"
    assert metadata["ssh-keys"] == "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
    assert "service_account" not in instance, "the VMs call no Google API: no credentials on them"
    assert instance["labels"] == {"name": "${each.value.name}", "duo_role": "${each.key}"}
    assert locals_of("gcp")["roles"] == ["gitlab", "ai_gateway", "ollama"]
    boot = instance["boot_disk"][0]["initialize_params"][0]
    assert boot["size"] == "${each.value.disk_gb}"
    assert instance["lifecycle"][0]["ignore_changes"] == [
        "${boot_disk[0].initialize_params[0].image}"
    ]
    image = named(load_config("gcp"), "data")["google_compute_image.ubuntu"]
    assert image == {
        "family": "ubuntu-2404-lts-amd64",
        "project": "ubuntu-os-cloud",
        "__is_block__": True,
    }


def test_gcp_private_vms_reach_the_internet_through_cloud_nat() -> None:
    resources = named(load_config("gcp"), "resource")
    nat = resources["google_compute_router_nat.main"]
    assert nat["router"] == "${google_compute_router.main.name}"
    assert nat["subnetwork"][0]["name"] == "${google_compute_subnetwork.main.id}"
    assert resources["google_compute_network.main"]["auto_create_subnetworks"] is False


def test_gcp_dns_record_only_with_a_managed_zone() -> None:
    record = named(load_config("gcp"), "resource")["google_dns_record_set.gitlab"]
    assert record["count"] == "${var.dns_managed_zone == null ? 0 : 1}"
    assert record["type"] == "A"
    assert record["rrdatas"] == ["${google_compute_address.gitlab.address}"]
    assert named(load_config("gcp"), "variable")["dns_managed_zone"]["default"] is None


def test_aws_tags_every_taggable_resource() -> None:
    """Name and duo_role on every resource that takes tags (duo_prefix comes from default_tags)."""
    schema = _provider_schema("aws")["resource_schemas"]
    for address, body in named(load_config("aws"), "resource").items():
        rtype = address.split(".")[0]
        if "tags" not in schema[rtype]["block"]["attributes"]:
            continue
        tags = str(body.get("tags"))
        assert "Name" in tags and ("duo_role" in tags or "shared_tags" in tags), address
    provider = load_config("aws")["provider"][0]["aws"]
    assert "duo_prefix" in str(provider["default_tags"])


@pytest.mark.parametrize("cloud", CLOUDS)
def test_tfvars_example_names_every_required_variable(cloud: str) -> None:
    example = config_dir(cloud) / "terraform.tfvars.example"
    values = hcl2.loads(example.read_text(encoding="utf-8"), serialization_options=OPTIONS)
    variables = named(load_config(cloud), "variable")
    required = {n for n, b in variables.items() if "default" not in b}
    assert required <= set(values), f"{example.name} must set {sorted(required - set(values))}"
    assert set(values) <= set(variables), "the example sets a variable that does not exist"
