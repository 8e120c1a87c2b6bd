"""The GitLab Duo configuration of a deployment, built from the typed deployment.

What `duoctl deploy` applies with `duoctl configure` (written to `.deploy/<name>/duo.yml` so it
can be read and re-applied by hand): the deployment's gateway and agent platform, the served
model (Ollama or vLLM) as `custom_openai/<id the server lists>` at its private endpoint, the
three code and chat features on it, a seat for root, and the gateway's address in GitLab's
outbound allowlist (GitLab's SSRF protection blocks private addresses otherwise). The result
goes through configure's own loader.

`--duo-models FILE` (DuoModels, kept in the deployment's settings) adds models on cloud
platforms, Amazon Bedrock and Azure OpenAI, and maps features to them, to the served model (by
its name), or to `vendored` or `disabled`; features it does not list keep the default mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from duoctl.config import (
    DISABLED,
    MODEL_FAMILIES,
    VENDORED,
    ConfigError,
    DuoConfig,
    known_features,
    parse_config,
)
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


def ollama_model(
    repo: Path, inventory: Path | None = None, listed: list[str] | None = None
) -> ServedModel:
    """The Ollama model; with `listed` (the ids Ollama's /v1/models gives), its id there."""
    wanted = served_model(repo, inventory)
    model_id = wanted
    if listed is not None:
        also = () if ":" in wanted else (f"{wanted}:latest",)  # Ollama's default tag
        model_id = server_id(listed, wanted, "the Ollama model the deployment pulls", also)
    return ServedModel(MODEL_NAME, MODEL_FAMILY, f"custom_openai/{model_id}")


def vllm_model(preset: Preset, api_key_file: Path, listed: list[str] | None = None) -> ServedModel:
    """A vLLM preset's model; with `listed` (the ids vLLM's /v1/models gives), the id there,
    which must be the preset's served name."""
    model_id = preset.served_model_name
    if listed is not None:
        model_id = server_id(listed, model_id, f"preset {preset.name}'s served name")
    return ServedModel(
        name=preset.name,
        family=preset.model.gitlab_family,
        identifier=f"custom_openai/{model_id}",
        features=tuple(f for f in FEATURES if f in preset.model.features),
        api_key_file=str(api_key_file),
    )


def server_id(listed: list[str], wanted: str, what: str, also: tuple[str, ...] = ()) -> str:
    """The id GitLab registers: the one the model server lists for `wanted`; DuoctlError
    naming both when the server does not serve it."""
    for candidate in (wanted, *also):
        if candidate in listed:
            return candidate
    served = ", ".join(repr(i) for i in listed) if listed else "no model"
    raise DuoctlError(
        f"the model server's /v1/models lists {served}, not {what} {wanted!r}: GitLab would "
        f"ask it for a model it does not serve",
        "check the model server (journalctl -u vllm or -u ollama on the model host) and run "
        "duoctl deploy again with --from site",
        exit_code=1,
    )


def listed_models(base_url: str, api_key: str | None = None, timeout: float = 30.0) -> list[str]:
    """The ids an OpenAI-compatible server lists on `<base_url>/v1/models` (`data[].id`);
    `api_key` goes as a Bearer token. DuoctlError when it does not answer with a list."""
    import httpx

    url = f"{base_url.rstrip('/')}/v1/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        answer = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DuoctlError(
            f"{url} did not answer: {type(exc).__name__}: {exc}",
            "check that the model server runs (journalctl on the model host)",
            exit_code=1,
        ) from None
    if answer.status_code in (401, 403):
        raise DuoctlError(
            f"{url} refused the API key (HTTP {answer.status_code})",
            "the model server's API key differs from secrets/vllm_api_key: run duoctl deploy "
            "again with --from site",
            exit_code=1,
        )
    try:
        answer.raise_for_status()
        data = answer.json()["data"]
        return [str(entry["id"]) for entry in data]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise DuoctlError(
            f"{url} did not list models (HTTP {answer.status_code}, {type(exc).__name__})",
            "check the model server on the model host",
            exit_code=1,
        ) from None


# --- models on cloud platforms (--duo-models) -------------------------------------------------

# A Bedrock model ID or inference profile ID, [geography.]provider.model[:version], as
# Terraform's bedrock_models variable takes it (terraform/aws).
_BEDROCK_MODEL_ID = re.compile(
    r"^((us|us-gov|eu|apac|jp|au|ca|global)\.)?[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9._-]*(:[0-9]+)?$"
)
# Cross-region inference profiles: the geography prefix -> the regions that may call them
# (global. profiles: any region).
BEDROCK_GEOGRAPHIES = {
    "us": "us-",
    "us-gov": "us-gov-",
    "eu": "eu-",
    "apac": "ap-",
    "jp": "ap-",
    "au": "ap-",
    "ca": "ca-",
}
_AZURE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
ModelName = Annotated[str, Field(pattern=_MODEL_NAME.pattern)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: ModelName  # the self-hosted model's name in GitLab, which features map to
    family: str  # GitLab's model family, e.g. claude_3 or gpt

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        if v.upper() not in MODEL_FAMILIES:
            raise ValueError(
                f"unknown model family {v!r}; valid values: "
                f"{', '.join(f.lower() for f in MODEL_FAMILIES)}"
            )
        return v.lower()


class BedrockModel(_Entry):
    """An Amazon Bedrock model, reached by the AI gateway with the AWS deployment's instance
    role: `model_id` is the model's inference profile ID (us.anthropic.claude-...), or its
    plain model ID in a region without cross-region inference."""

    platform: Literal["bedrock"]
    model_id: str

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, v: str) -> str:
        if len(v) > 128 or not _BEDROCK_MODEL_ID.match(v):
            raise ValueError(
                f"{v!r} is not a Bedrock model or inference profile ID such as "
                f"us.anthropic.claude-sonnet-4-20250514-v1:0"
            )
        return v

    @property
    def identifier(self) -> str:
        return f"bedrock/{self.model_id}"

    def region_problem(self, region: str) -> str | None:
        """A cross-region inference profile called from a region outside its geography."""
        geography = self.model_id.split(".", 1)[0]
        start = BEDROCK_GEOGRAPHIES.get(geography)
        if start is None or region.startswith(start):
            return None
        return (
            f"model {self.name}: the inference profile {self.model_id} is for {geography}-* "
            f"regions (prefix {geography}.), the deployment is in {region}; use the profile "
            f"of the deployment's geography (e.g. {_geography_of(region)}.anthropic...) or "
            f"deploy in a {start}* region"
        )


def _geography_of(region: str) -> str:
    matches = [g for g, start in BEDROCK_GEOGRAPHIES.items() if region.startswith(start)]
    return max(matches, key=len) if matches else "<geography>"


class AzureModel(_Entry):
    """An Azure OpenAI deployment: the resource's endpoint, the deployment's name, and a file
    holding the resource's API key (only the path is kept; the key is read when applied)."""

    platform: Literal["azure"]
    endpoint: str  # https://<resource>.openai.azure.com
    deployment: str
    api_key_file: str

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"endpoint {v!r} must be the resource's https:// URL, e.g. "
                f"https://my-resource.openai.azure.com"
            )
        return v.rstrip("/")

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, v: str) -> str:
        if not _AZURE_DEPLOYMENT.match(v):
            raise ValueError(
                f"{v!r} is not an Azure OpenAI deployment name (letters, digits, . _ -)"
            )
        return v

    @field_validator("api_key_file")
    @classmethod
    def _key_file(cls, v: str) -> str:
        if not v:
            raise ValueError("api_key_file: the path of a file holding the API key")
        return v

    @property
    def identifier(self) -> str:
        return f"azure/{self.deployment}"


CloudModel = Annotated[BedrockModel | AzureModel, Field(discriminator="platform")]


class DuoModels(BaseModel):
    """The `--duo-models` file: models on cloud platforms and the feature mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[CloudModel, ...] = ()
    # feature -> a model name here, the served model's name, vendored or disabled
    features: dict[str, str] = Field(default_factory=dict)
    # Bedrock through a private interface endpoint in the deployment's VPC (terraform/aws
    # bedrock_vpc_endpoint): model traffic never leaves the VPC.
    bedrock_vpc_endpoint: bool = False

    @field_validator("features")
    @classmethod
    def _features(cls, v: dict[str, str]) -> dict[str, str]:
        return known_features(v)

    @model_validator(mode="after")
    def _names(self) -> DuoModels:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: the name(s) {', '.join(dupes)} are used more than once")
        reserved = sorted({VENDORED, DISABLED} & set(names))
        if reserved:
            raise ValueError(f"models: {', '.join(reserved)} is not a model name (reserved)")
        if self.bedrock_vpc_endpoint and not self.bedrock_models:
            raise ValueError(
                "bedrock_vpc_endpoint: true needs at least one model with platform: bedrock"
            )
        return self

    @property
    def bedrock_models(self) -> list[BedrockModel]:
        return [m for m in self.models if isinstance(m, BedrockModel)]

    @property
    def azure_models(self) -> list[AzureModel]:
        return [m for m in self.models if isinstance(m, AzureModel)]

    def problems(
        self, cloud: str, region: str, served: str, served_features: tuple[str, ...] | None
    ) -> list[str]:
        """What the deployment cannot do with these models: Bedrock off AWS, a profile of
        another geography, features mapped to no model or to a served model that GitLab does
        not list for them (`served_features`: what a vLLM preset's model supports)."""
        problems = []
        if served in {m.name for m in self.models}:
            problems.append(
                f"models: {served} is the served model's name in GitLab; name this one differently"
            )
        if self.bedrock_models and cloud != "aws":
            names = ", ".join(m.name for m in self.bedrock_models)
            problems.append(
                f"models: {names}: Bedrock models need an AWS deployment (the AI gateway "
                f"reaches Bedrock with the AWS VM's instance role, which a {cloud} deployment "
                f"does not have); deploy on aws, or use an Azure OpenAI model or the served "
                f"model"
            )
        elif cloud == "aws":
            problems += [p for m in self.bedrock_models if (p := m.region_problem(region))]
        choices = [served, *(m.name for m in self.models), VENDORED, DISABLED]
        for feature, target in sorted(self.features.items()):
            if target not in choices:
                problems.append(
                    f"features.{feature}: {target!r} is no model; choose one of: "
                    f"{', '.join(choices)}"
                )
            elif (
                target == served
                and served_features is not None
                and feature in FEATURES
                and feature not in served_features
            ):
                problems.append(
                    f"features.{feature}: GitLab does not list the served model {served} for "
                    f"{feature}; map it to another model, {VENDORED} or {DISABLED}"
                )
        return problems


def load_duo_models(path: str | Path) -> dict[str, Any]:
    """The `--duo-models` file as data, its api_key_file paths made absolute (relative ones
    are relative to the file's folder); ValueError naming the file when it cannot be read."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read {file}: {reason}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{file} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a mapping (models:, features:)")
    models = data.get("models")
    if isinstance(models, list):
        data["models"] = [_absolute_key_file(m, file.parent) for m in models]
    return data


def _absolute_key_file(entry: Any, folder: Path) -> Any:
    value = entry.get("api_key_file") if isinstance(entry, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        return entry
    return {**entry, "api_key_file": str((folder / Path(value.strip()).expanduser()).resolve())}


def check_api_key_files(models: DuoModels) -> list[str]:
    """Each Azure model's key file is readable and holds a key (never shown)."""
    problems = []
    for model in models.azure_models:
        path = Path(model.api_key_file)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(f"model {model.name}: api_key_file {path}: {reason}")
            continue
        if not key:
            problems.append(f"model {model.name}: api_key_file {path} is empty")
    return problems


def cloud_model_entries(models: DuoModels, region: str) -> list[dict[str, Any]]:
    """The duo.yml entries of the cloud models: Bedrock with no endpoint (provider bedrock;
    before GitLab 19.x configure registers the region's runtime URL), Azure with its
    endpoint and key file."""
    entries: list[dict[str, Any]] = []
    for model in models.models:
        entry: dict[str, Any] = {
            "name": model.name,
            "family": model.family,
            "identifier": model.identifier,
        }
        if isinstance(model, BedrockModel):
            entry["region"] = region
        else:
            entry["endpoint"] = model.endpoint
            entry["api_key_file"] = model.api_key_file
        entries.append(entry)
    return entries


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
    deployment: Deployment,
    model: ServedModel,
    activation_code_file: str | None = None,
    cloud_models: DuoModels | None = None,
    region: str | None = None,
) -> DuoConfig:
    """The configuration `duoctl configure` applies to this deployment: the served model, and
    the `--duo-models` models and feature mapping over the default one (`region`: where the
    Bedrock models are called, the deployment's)."""
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
    if cloud_models is not None:
        if cloud_models.bedrock_models and not region:
            raise DuoctlError(
                "Bedrock models need the deployment's AWS region",
                "deploy them with duoctl deploy aws",
            )
        data["models"] += cloud_model_entries(cloud_models, region or "")
        data["features"].update(cloud_models.features)
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
