"""The cloud steps before any host exists: preflight, terraform (init + apply), inventory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duoctl import inventory, serving, terraform_workdir
from duoctl.deploy.state import deployment_of, remember
from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.pipeline import Context, StepFailed
from duoctl.settings import DeploySettings, private_key_of, wildcard_domain

# Terraform needs a host name before the public IP exists; the wildcard-DNS name replaces it in
# a second, output-only apply as soon as the IP is known.
PROVISIONAL_DOMAIN = "gitlab.pending.sslip.io"
CAPACITY_ERRORS = ("ZONE_RESOURCE_POOL_EXHAUSTED", "InsufficientInstanceCapacity")
ZONE_CHECKS = ("instance types", "machine types")  # preflight checks that choose the zone


def output_value(outputs: dict[str, Any], key: str) -> Any:
    """A Terraform output, whether given as `terraform output -json` ({value: ...}) or plain."""
    if key not in outputs:
        raise StepFailed(f"terraform output {key!r} is missing; run the terraform step again")
    value = outputs[key]
    return value["value"] if isinstance(value, dict) and "value" in value else value


# Destroying needs no SSH key: a placeholder that passes the variable's validation.
DESTROY_SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDestroyOnlyPlaceholderKeyNotUsed0000000 destroy"
)


def terraform_variables(
    settings: DeploySettings, domain: str, zone: str | None = None, for_destroy: bool = False
) -> dict[str, Any]:
    """Settings -> the Terraform variables of terraform/<cloud>.

    `zone` is the one preflight chose when the settings name none: Google Cloud needs one,
    AWS picks the same first fitting zone itself. `for_destroy`: the SSH key file is not read.
    """
    types = {
        "gitlab_instance_type": settings.gitlab_machine_type,
        "gateway_instance_type": settings.gateway_machine_type,
        "ollama_instance_type": settings.ollama_machine_type,
    }
    variables: dict[str, Any] = {
        "region": settings.region,
        "admin_cidrs": [settings.admin_cidr],
        "ssh_public_key": DESTROY_SSH_KEY if for_destroy else settings.ssh_public_key(),
        "gitlab_domain": domain,
        "prefix": settings.prefix,
        "gateway_port": settings.gateway_port,
        "gateway_grpc_port": settings.gateway_grpc_port,
        # The GPU VM's office hours (null: always on) and how long backups are kept.
        "gpu_schedule": settings.gpu_schedule.terraform() if settings.gpu_schedule else None,
        "backup_retention_days": settings.backup_retention_days,
    }
    if settings.cloud == "aws":
        variables["availability_zone"] = settings.zone
        variables["route53_zone_id"] = settings.managed_zone
        variables.update(types)
        bedrock = settings.bedrock_model_ids()
        if bedrock:  # what the AI gateway's instance role may invoke, and how it gets there
            variables["bedrock_models"] = bedrock
            if settings.duo_models is not None and settings.duo_models.bedrock_vpc_endpoint:
                variables["bedrock_vpc_endpoint"] = True
    else:
        variables["project_id"] = settings.project
        variables["zone"] = settings.zone or zone
        variables["dns_managed_zone"] = settings.managed_zone
        variables.update({k.replace("instance", "machine"): v for k, v in types.items()})
    preset = settings.preset()
    if preset is None:
        variables["ollama_port"] = settings.model_port_in_effect()
    else:  # the GPU VM the preset needs, and vLLM's port
        variables.update(serving.terraform_variables_for(preset, settings.cloud))
        variables["model_port"] = settings.model_port_in_effect()
    return {k: v for k, v in variables.items() if v is not None}


@dataclass
class PreflightStep:
    checks: Callable[[DeploySettings], list[Any]] | None = None
    name: str = "preflight"

    def run(self, ctx: Context) -> None:
        from duoctl import preflight

        results = (self.checks or preflight.run_checks)(ctx.settings)
        for line in preflight.render(results).splitlines():
            ctx.progress.output(line)
        if not preflight.all_ok(results):
            raise StepFailed("preflight found problems; each is listed above with its fix")
        zones = [r.value for r in results if r.name in ZONE_CHECKS and r.value]
        if zones:
            ctx.data["zone"] = zones[0]


@dataclass
class TerraformStep:
    """terraform init + apply in the deployment's own working directory (a copy of the root
    module terraform/<cloud>, with its backend); keeps the deployment the outputs describe."""

    source: Path | None = None  # the root module; None: terraform/<cloud> of the checkout
    name: str = "terraform"

    def run(self, ctx: Context) -> None:
        from duoctl import terraform

        settings: DeploySettings = ctx.settings
        source = self.source or ctx.paths.repo / "terraform" / settings.cloud
        workdir = ctx.paths.terraform_dir
        backend = settings.state().hcl(ctx.paths.name, settings.region)
        domain = settings.domain or ctx.data.get("wildcard_domain") or PROVISIONAL_DOMAIN
        zone = settings.zone or ctx.data.get("zone")
        if settings.cloud == "gcp" and not zone:
            raise StepFailed("no zone known: pass --zone (e.g. us-central1-a) or run preflight")
        try:
            terraform_workdir.prepare(source, workdir, backend)
            ctx.progress.output(f"terraform init in {workdir}")
            terraform.init(workdir, sink=ctx.progress.output)
            ctx.progress.output("terraform apply")
            terraform.apply(
                workdir, terraform_variables(settings, domain, zone), sink=ctx.progress.output
            )
            outputs = terraform.outputs(workdir)
            if settings.domain_plan() == "wildcard_dns":
                wanted = wildcard_domain(str(output_value(outputs, "gitlab_public_ip")))
                ctx.data["wildcard_domain"] = wanted
                if wanted != domain:
                    ctx.progress.output(f"GitLab's name: {wanted}; applying it")
                    terraform.apply(
                        workdir,
                        terraform_variables(settings, wanted, zone),
                        sink=ctx.progress.output,
                    )
                    outputs = terraform.outputs(workdir)
        except terraform.TerraformError as exc:
            hint = ""
            if any(word in str(exc) for word in CAPACITY_ERRORS):
                hint = (
                    f"\nNo capacity in {zone or 'this zone'} now: re-run with --zone ANOTHER_ZONE"
                )
            raise StepFailed(f"{exc}{hint}") from exc
        except DuoctlError as exc:
            raise StepFailed(str(exc)) from None
        try:
            deployment = Deployment.from_outputs(outputs, settings.cloud, settings.serving)
        except DuoctlError as exc:
            raise StepFailed(str(exc)) from None
        remember(ctx, deployment)
        ctx.data["gitlab_url"] = deployment.gitlab_url
        ctx.data["dns_record_needed"] = output_value(outputs, "dns_record_needed")


@dataclass
class InventoryStep:
    """The deployment -> its Ansible inventory and SSH client configuration."""

    name: str = "inventory"

    def run(self, ctx: Context) -> None:
        deployment = deployment_of(ctx)
        identity = private_key_of(ctx.settings.ssh_public_key_file) if ctx.settings else None
        try:
            changed = inventory.write_files(deployment, ctx.paths, identity)
        except DuoctlError as exc:
            raise StepFailed(str(exc)) from None
        state = "written" if changed else "unchanged"
        ctx.progress.output(f"{ctx.paths.inventory} and {ctx.paths.ssh_config} {state}")
