"""The `duo.yml` file: pydantic models and their validation messages.

Validation is complete before any request is sent: every problem in the file is
reported at once, each naming the key it concerns and how to fix it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# AiAcceptedSelfHostedModels of every supported version (17.9 to 19.x; EMBEDDING, GEMINI
# and QWEN are newer than 18.9). The instance's own list is checked again at run time, by
# introspection, before anything is changed.
MODEL_FAMILIES = (
    "CLAUDE_3",
    "CODEGEMMA",
    "CODELLAMA",
    "CODESTRAL",
    "DEEPSEEKCODER",
    "EMBEDDING",
    "GEMINI",
    "GENERAL",
    "GPT",
    "LLAMA3",
    "MISTRAL",
    "MIXTRAL",
    "QWEN",
)

# AiFeatures of every supported version (17.9 to 19.x), written in the lower-case form
# GitLab stores; the instance's own list is checked at run time as well.
FEATURES = (
    "code_completions",
    "code_generations",
    "duo_agent_platform",
    "duo_agent_platform_agentic_chat",
    "duo_chat",
    "duo_chat_explain_code",
    "duo_chat_explain_vulnerability",
    "duo_chat_fix_code",
    "duo_chat_refactor_code",
    "duo_chat_summarize_comments",
    "duo_chat_troubleshoot_job",
    "duo_chat_write_tests",
    "duo_developer",
    "feature_discovery_search",
    "generate_commit_message",
    "glab_ask_git_command",
    "resolve_dependency_bump",
    "resolve_vulnerability",
    "review_merge_request",
    "review_merge_request_dap",
    "sast_vulnerability_fp_detection",
    "sast_vulnerability_resolution",
    "secret_vulnerability_fp_detection",
    "security_review",
    "summarize_new_merge_request",
    "summarize_review",
)
# The agent platform features (GitLab 19.x: no beta toggle, but an offline cloud license
# needs the SELF_HOSTED_DAP add-on for them).
AGENT_PLATFORM_FEATURES = ("duo_agent_platform", "duo_agent_platform_agentic_chat", "duo_developer")

# A feature maps to a model name, or to one of these providers.
VENDORED = "vendored"
DISABLED = "disabled"

IDENTIFIER_PREFIXES = ("custom_openai", "bedrock", "vertex_ai", "azure")
# AiSelfHostedModelProvider (GitLab 19.x): how GitLab reaches the model. API is any
# endpoint-based (OpenAI-compatible) server such as Ollama or vLLM.
API, BEDROCK, VERTEX_AI = "API", "BEDROCK", "VERTEX_AI"
PROVIDERS = (API, BEDROCK, VERTEX_AI)
# Identifier platforms that fix the provider; others (azure, none) default to API.
PREFIX_PROVIDER = {"custom_openai": API, "bedrock": BEDROCK, "vertex_ai": VERTEX_AI}
GATEWAY_TIMEOUT_RANGE = (60, 600)
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
# The environment variable that may hold a subscription activation code.
ACTIVATION_CODE_ENV = "GITLAB_ACTIVATION_CODE"
# What GitLab's own activation form accepts (Admin > Subscription: pattern="\w{24}"):
# a 24-character alphanumeric code from the Customers Portal or the purchase email.
_ACTIVATION_CODE = re.compile(r"\w{24}", re.ASCII)


class ConfigError(Exception):
    """The configuration file is invalid; `problems` lists every issue found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {'; '.join(problems)}")

    def render(self) -> str:
        lines = [f"{self.source} is not valid ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append("Nothing was sent to GitLab. Fix the file and run again.")
        return "\n".join(lines)


class ActivationCodeError(ValueError):
    """The activation code cannot be used; the message names its source, never the code."""


@dataclass(frozen=True)
class ActivationCode:
    """A subscription activation code and where it came from (for messages)."""

    value: str = field(repr=False)
    source: str


def check_activation_code(text: str, source: str) -> str:
    """The code in `text`, stripped; an error naming `source` if it is not a code."""
    code = text.strip()
    if not code:
        raise ActivationCodeError(f"{source} is empty")
    if not _ACTIVATION_CODE.fullmatch(code):
        raise ActivationCodeError(
            f"{source} does not hold an activation code: GitLab's activation codes are 24 "
            f"letters and digits (copy it from the Customers Portal, Manage purchases, or the "
            f"purchase email). A license file (.gitlab-license) is not an activation code: "
            f"`duoctl deploy` takes it with --license-file."
        )
    return code


def read_activation_code_file(path: str | Path) -> str:
    """The activation code held in a file; the error never shows the file's content."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if _ACTIVATION_CODE.fullmatch(str(path).strip()) and not file.exists():
            # Someone passed the code where its file belongs: do not echo it back.
            raise ActivationCodeError(
                "the activation code file was given the code itself instead of a file path: "
                "write the code to a file only you can read (chmod 600) and give its path"
            ) from None
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ActivationCodeError(
            f"cannot read the activation code file {file}: {reason}"
        ) from None
    return check_activation_code(text, f"the activation code file {file}")


def _check_http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"must be a full http:// or https:// URL with a host, got {value!r} "
            f"(for example http://10.0.2.10:5052)"
        )
    try:
        parts.port  # noqa: B018 - raises on an out-of-range or non-numeric port
    except ValueError as exc:
        raise ValueError(f"{what} has an invalid port: {value!r}") from exc
    if len(value) > 2048:
        raise ValueError(f"{what} is longer than GitLab's limit of 2048 characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GitLabSection(_Strict):
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_http_url(v, "gitlab.url").rstrip("/")


class GatewaySection(_Strict):
    url: str = Field(description="Local AI gateway URL, e.g. http://10.0.2.10:5052")
    timeout_seconds: int | None = None
    agent_platform_url: str | None = None
    # TLS to the agent platform service (GitLab 19.x setting); unset: false when
    # agent_platform_url is set (the bundle's gateway serves plain gRPC), else unmanaged.
    agent_platform_secure: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_http_url(v, "gateway.url").rstrip("/")

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, v: int | None) -> int | None:
        low, high = GATEWAY_TIMEOUT_RANGE
        if v is not None and not low <= v <= high:
            raise ValueError(f"gateway.timeout_seconds must be between {low} and {high}, got {v}")
        return v

    @field_validator("agent_platform_url")
    @classmethod
    def _agent_platform(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if "://" in v:
            raise ValueError(
                f"gateway.agent_platform_url takes host:port without a scheme, got {v!r} "
                f"(for example 10.0.2.10:50052)"
            )
        match = _HOST_PORT.match(v)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(
                f"gateway.agent_platform_url must be host:port, got {v!r} "
                f"(for example 10.0.2.10:50052)"
            )
        return v

    def agent_platform_tls(self) -> bool | None:
        """The TLS setting to apply: the file's, else false with an agent platform URL."""
        if self.agent_platform_secure is not None:
            return self.agent_platform_secure
        return False if self.agent_platform_url else None


def provider_for(identifier: str | None) -> str:
    """The provider an identifier implies: bedrock/ BEDROCK, vertex_ai/ VERTEX_AI, else API."""
    prefix = (identifier or "").partition("/")[0]
    return PREFIX_PROVIDER.get(prefix, API)


def bedrock_endpoint(region: str) -> str:
    """Amazon Bedrock's runtime endpoint in `region`."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class ModelSection(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    family: str
    # Required for the API provider; optional for BEDROCK and VERTEX_AI (GitLab 19.x).
    endpoint: str | None = None
    identifier: Annotated[str, Field(max_length=255)] | None = None
    # Defaults to the provider the identifier implies (see provider_for).
    provider: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    # A Bedrock model's AWS region. GitLab before 19.x needs an endpoint for every model: there
    # the model is registered with this region's Bedrock runtime URL (bedrock_endpoint).
    region: str | None = None

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        upper = v.upper()
        if upper not in MODEL_FAMILIES:
            raise ValueError(
                f"unknown model family {v!r}; valid values: "
                f"{', '.join(f.lower() for f in MODEL_FAMILIES)}"
            )
        return upper

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None else _check_http_url(v, "endpoint")

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str | None) -> str | None:
        if v is None:
            return None
        upper = v.upper()
        if upper not in PROVIDERS:
            raise ValueError(
                f"unknown provider {v!r}; valid values: {', '.join(p.lower() for p in PROVIDERS)}"
            )
        return upper

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        if v is None:
            return None
        prefix, _, rest = v.partition("/")
        if prefix not in IDENTIFIER_PREFIXES or not rest:
            raise ValueError(
                f"identifier {v!r} must be <platform>/<model>, platform one of "
                f"{', '.join(IDENTIFIER_PREFIXES)} (for example custom_openai/mistral:instruct)"
            )
        return v

    @model_validator(mode="after")
    def _shape(self) -> ModelSection:
        implied = provider_for(self.identifier)
        pinned = (self.identifier or "").partition("/")[0] in PREFIX_PROVIDER
        if self.provider is None:
            self.provider = implied
        elif pinned and self.provider != implied:
            raise ValueError(
                f"provider {self.provider.lower()} does not match identifier "
                f"{self.identifier!r}, whose platform means provider {implied.lower()} "
                f"(leave provider out to use it)"
            )
        if self.endpoint is None:
            if self.provider == API:
                raise ValueError(
                    "endpoint is required for provider api (the model server's URL; for "
                    "Ollama or vLLM the OpenAI-compatible base URL, e.g. "
                    "http://10.0.3.10:11434/v1); only bedrock and vertex_ai models may omit it"
                )
        elif (
            self.identifier
            and self.identifier.startswith("custom_openai/")
            and not self.endpoint.rstrip("/").endswith("/v1")
        ):
            raise ValueError(
                f"endpoint {self.endpoint!r} must end in /v1 for a custom_openai identifier "
                f"(the OpenAI-compatible base URL, e.g. http://10.0.3.10:11434/v1)"
            )
        if self.api_key_env and self.api_key_file:
            raise ValueError("set only one of api_key_env and api_key_file")
        if self.region is not None:
            if self.provider != BEDROCK:
                raise ValueError("region is only for bedrock models (their runtime's region)")
            if not _AWS_REGION.match(self.region):
                raise ValueError(f"region {self.region!r} is not an AWS region such as us-east-1")
        return self

    def endpoint_for(self, endpoint_required: bool) -> str | None:
        """The endpoint to register: the file's, else, where GitLab requires one (before
        19.x), a Bedrock model's regional runtime URL."""
        if self.endpoint is None and endpoint_required and self.region:
            return bedrock_endpoint(self.region)
        return self.endpoint

    def provider_value(self) -> str:
        """The AiSelfHostedModelProvider value: the file's, else the identifier's."""
        return self.provider or provider_for(self.identifier)

    def api_key(self) -> str | None:
        """The API key from the environment or file named in the config, if any."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ConfigError(
                    f"model {self.name}",
                    [f"environment variable {self.api_key_env} (api_key_env) is not set"],
                )
            return value
        if self.api_key_file:
            path = Path(self.api_key_file).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"model {self.name}",
                    [f"api_key_file {path} cannot be read: {exc.strerror}"],
                ) from exc
        return None


class LicenseSection(_Strict):
    """Where to find an activation code, used only while GitLab lacks GitLab Duo Enterprise."""

    activation_code_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_code(cls, data: Any) -> Any:
        if isinstance(data, dict) and "activation_code" in data:
            raise ValueError(
                f"activation_code: the code is never written in this file; put it in a file "
                f"named by license.activation_code_file, or export {ACTIVATION_CODE_ENV}"
            )
        return data

    @field_validator("activation_code_file")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not v:
            raise ValueError("must be the path of a file holding the activation code")
        return v

    def activation_code(self) -> ActivationCode | None:
        """The code from activation_code_file, if set; unreadable or malformed is bad input."""
        if not self.activation_code_file:
            return None
        try:
            code = read_activation_code_file(self.activation_code_file)
        except ActivationCodeError as exc:
            raise ConfigError("license", [f"activation_code_file: {exc}"]) from None
        return ActivationCode(code, f"license.activation_code_file {self.activation_code_file}")


def known_features(mapping: dict[str, str]) -> dict[str, str]:
    """A feature mapping's keys are GitLab's feature names (a validator's check)."""
    unknown = sorted(set(mapping) - set(FEATURES))
    if unknown:
        raise ValueError(
            f"unknown feature(s) {', '.join(unknown)}; GitLab's features: {', '.join(FEATURES)}"
        )
    return mapping


class DuoConfig(_Strict):
    gitlab: GitLabSection = Field(default_factory=GitLabSection)
    license: LicenseSection = Field(default_factory=LicenseSection)
    gateway: GatewaySection
    models: list[ModelSection] = Field(default_factory=list)
    features: dict[str, str] = Field(default_factory=dict)
    seats: list[str] = Field(default_factory=list)
    outbound_allowlist: list[str] = Field(default_factory=list)
    prune_models: bool = False

    @field_validator("features")
    @classmethod
    def _features(cls, v: dict[str, str]) -> dict[str, str]:
        return known_features(v)

    @field_validator("seats")
    @classmethod
    def _seats(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not _USERNAME.match(u)]
        if bad:
            raise ValueError(f"invalid username(s) in seats: {', '.join(map(repr, bad))}")
        dupes = sorted({u for u in v if v.count(u) > 1})
        if dupes:
            raise ValueError(f"duplicate username(s) in seats: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _references(self) -> DuoConfig:
        problems = reference_problems([m.name for m in self.models], self.features)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def model(self, name: str) -> ModelSection:
        return next(m for m in self.models if m.name == name)


def reference_problems(names: list[str], features: dict[str, str]) -> list[str]:
    """Duplicate model names, and features pointing at no model."""
    problems = [
        f"models: deployment name {dup!r} is used more than once"
        for dup in sorted({n for n in names if names.count(n) > 1})
    ]
    choices = [*names, VENDORED, DISABLED]
    for feature, target in sorted(features.items()):
        if target not in choices:
            problems.append(
                f"features.{feature}: {target!r} is not a model name in models "
                f"nor {VENDORED}/{DISABLED}; choose one of: {', '.join(choices)}"
            )
    return problems


def _raw_reference_problems(data: dict[str, Any]) -> list[str]:
    """The cross-checks on a file whose fields did not all validate."""
    models = data.get("models")
    features = data.get("features")
    if not isinstance(models, list) or not isinstance(features, dict):
        return []
    names = [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
    targets = {str(k): v for k, v in features.items() if isinstance(v, str)}
    return reference_problems(names, targets)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _messages(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        where = _location(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the example duo.yml in the README)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        for part in msg.split("\n"):
            problems.append(f"{where}: {part}" if where else part)
    return problems


def parse_config(data: Any, source: str = "config") -> DuoConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a YAML mapping (gateway:, models:, ...)"])
    try:
        return DuoConfig.model_validate(data)
    except ValidationError as exc:
        problems = _messages(exc)
        problems += [p for p in _raw_reference_problems(data) if p not in problems]
        raise ConfigError(source, problems) from None


def load_config(path: str | Path) -> DuoConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_config(data, str(path))


def is_private_host(host: str) -> bool:
    """True when host is a private, loopback or link-local address, or a single-label name."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "." not in host or host.endswith((".internal", ".local", ".localdomain"))
    return addr.is_private or addr.is_loopback or addr.is_link_local
