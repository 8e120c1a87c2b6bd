"""The GitLab Duo configuration of a deployment, built from the typed deployment.

What `duoctl deploy` applies with `duoctl configure` (written to `.deploy/<name>/duo.yml` so it
can be read and re-applied by hand): the deployment's gateway and agent platform, the Ollama
model as `custom_openai/<model>` at its private endpoint, the three code and chat features on
it, a seat for root, and the gateway's address in GitLab's outbound allowlist (GitLab's SSRF
protection blocks private addresses otherwise). The result goes through configure's own loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from duoctl.config import ConfigError, DuoConfig, parse_config
from duoctl.deployment import Deployment, read_inventory
from duoctl.errors import DuoctlError
from duoctl.serving import Preset

MODEL_NAME = "mistral-7b-ollama"
MODEL_FAMILY = "mistral"
FEATURES = ("code_generations", "code_completions", "duo_chat")


@dataclass(frozen=True)
class ServedModel:
    """The model server's model as GitLab registers it."""

    name: str  # the self-hosted model's name in GitLab
    family: str
    identifier: str  # custom_openai/<the id the server lists in /v1/models>
    features: tuple[str, ...] = FEATURES
    api_key_file: str | None = None  # vLLM's API key, registered with the model


def ollama_model(repo: Path, inventory: Path | None = None) -> ServedModel:
    return ServedModel(MODEL_NAME, MODEL_FAMILY, f"custom_openai/{served_model(repo, inventory)}")


def vllm_model(preset: Preset, api_key_file: Path) -> ServedModel:
    """A vLLM preset's model; the role checked /v1/models lists its served name."""
    return ServedModel(
        name=preset.name,
        family=preset.model.gitlab_family,
        identifier=f"custom_openai/{preset.served_model_name}",
        features=tuple(f for f in FEATURES if f in preset.model.features),
        api_key_file=str(api_key_file),
    )


SEATS = ("root",)
GATEWAY_TIMEOUT_SECONDS = 120


def served_model(repo: Path, inventory: Path | None = None) -> str:
    """The first model the Ollama host serves: its `ollama_models` in the inventory, else the
    ollama role's default."""
    if inventory is not None:
        children = read_inventory(inventory)["all"].get("children") or {}
        group = children.get("ollama") or {}
        for host_vars in (group.get("hosts") or {}).values():
            models = (host_vars or {}).get("ollama_models") or (group.get("vars") or {}).get(
                "ollama_models"
            )
            if models:
                return str(models[0])
    defaults = repo / "ansible" / "roles" / "ollama" / "defaults" / "main.yml"
    try:
        models = (yaml.safe_load(defaults.read_text(encoding="utf-8")) or {})["ollama_models"]
        return str(models[0])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        raise DuoctlError(
            f"cannot read the default model from {defaults}", "run duoctl from a complete checkout"
        ) from None


def duo_config(
    deployment: Deployment, model: ServedModel, activation_code_file: str | None = None
) -> DuoConfig:
    """The configuration `duoctl configure` applies to this deployment."""
    entry: dict[str, Any] = {
        "name": model.name,
        "family": model.family,
        "endpoint": deployment.model_endpoint,
        "identifier": model.identifier,
    }
    if model.api_key_file:
        entry["api_key_file"] = model.api_key_file
    data: dict[str, Any] = {
        "gitlab": {"url": deployment.gitlab_url},
        "gateway": {
            "url": deployment.gateway_url,
            "timeout_seconds": GATEWAY_TIMEOUT_SECONDS,
            "agent_platform_url": deployment.agent_platform_address,
        },
        "models": [entry],
        "features": dict.fromkeys(model.features, model.name),
        "seats": list(SEATS),
        "outbound_allowlist": [deployment.gateway.private_ip],
        "prune_models": False,
    }
    if activation_code_file:
        data["license"] = {"activation_code_file": activation_code_file}
    try:
        return parse_config(data, "the deployment's GitLab Duo configuration")
    except ConfigError as exc:
        raise DuoctlError(exc.render(), "check the deployment's settings", exit_code=1) from None


def config_text(config: DuoConfig) -> str:
    body = yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    return (
        "# The GitLab Duo configuration `duoctl deploy` applied; re-apply it with\n"
        "# duoctl configure --config THIS_FILE --token-file secrets/gitlab_admin_token\n" + body
    )
