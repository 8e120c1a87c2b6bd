"""The in-memory GitLab instance behind the double: license, Duo settings, models, features, seats.

Behaviour follows GitLab EE (17.9 to 19.4): payload `errors` for validation failures, the
top-level "resource not available" error for missing permissions, deleting a model
cascades to its feature settings, and `aiFeatureSettings` lists every allowed feature
(unsaved ones as "unassigned"). A self-hosted model has a provider (`API`, `BEDROCK`,
`VERTEX_AI`; GitLab 19.x takes it as a required input, older versions have none, stored
here as `API`) and needs an endpoint when its provider is `API` (Ai::SelfHostedModel:
`validates :endpoint, presence: true, if: :api?`). The agent platform's TLS setting
(`selfHostedDuoAgentPlatformServiceSecure`, GitLab 19.x) starts true, GitLab's default.
Online activation (`gitlabSubscriptionActivate`) saves a cloud license and provisions its
add-on purchases before answering (GitlabSubscriptions::ActivateService); the Customers
Portal's answer is stood in for by `ACTIVATION_CODES`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from graphql import GraphQLError

NOT_ALLOWED = (
    "The resource that you are attempting to access does not exist or you don't have "
    "permission to perform this action"
)
MODEL_GID = "gid://gitlab/Ai::SelfHostedModel/{}"
USER_GID = "gid://gitlab/User/{}"
PURCHASE_GID = "gid://gitlab/GitlabSubscriptions::AddOnPurchase/{}"
LICENSE_GID = "gid://gitlab/License/{}"

# Activation codes the stand-in Customers Portal knows -> GitLab Duo Enterprise seats of the
# subscription (None: a subscription without the add-on). Codes are 24 letters and digits.
ACTIVATION_CODE = "Test0Activation0Code0Duo"
ACTIVATION_CODE_WITHOUT_DUO = "Test0Activation0Code0Pre"
ACTIVATION_CODES: dict[str, int | None] = {ACTIVATION_CODE: 10, ACTIVATION_CODE_WITHOUT_DUO: None}
# Payload errors GitLab relays: the portal's answer to an unknown code (the text GitLab's
# activation form looks for), and the one when GitLab cannot reach the portal at all.
INVALID_CODE_ERROR = "invalid activation code"
CONNECTIVITY_ERROR = "CONNECTIVITY_ERROR"

GA_FAMILIES = {"codestral", "mistral", "mixtral", "claude_3", "gpt"}
ALL_FAMILIES = GA_FAMILIES | {"codegemma", "codellama", "deepseekcoder", "llama3", "general"}
# Allowed features with their compatible families (feature_metadata.yml, abridged).
FEATURES = {
    "code_generations": sorted(ALL_FAMILIES),
    "code_completions": sorted(ALL_FAMILIES - {"claude_3"}),
    "duo_chat": sorted({"mistral", "mixtral", "claude_3", "gpt", "llama3", "general"}),
    "duo_chat_explain_code": sorted({"mistral", "mixtral", "claude_3", "gpt", "llama3"}),
    "duo_chat_write_tests": sorted({"mistral", "mixtral", "claude_3", "gpt", "llama3"}),
    "duo_chat_refactor_code": sorted({"mistral", "mixtral", "claude_3", "gpt", "llama3"}),
    "duo_chat_fix_code": sorted({"mistral", "mixtral", "claude_3", "gpt", "llama3"}),
}
TITLES = {
    "code_generations": ("Code Suggestions", "Code Generation"),
    "code_completions": ("Code Suggestions", "Code Completion"),
    "duo_chat": ("GitLab Duo Chat", "General Chat"),
}
# Application settings keys the REST double accepts on PUT (lib/api/settings.rb).
SETTINGS_KEYS = {
    "outbound_local_requests_allowlist_raw",
    "allow_local_requests_from_web_hooks_and_services",
    "allow_local_requests_from_system_hooks",
    "disabled_direct_code_suggestions",
    "enabled_expanded_logging",
    "deny_all_requests_except_allowed",
    "dns_rebinding_protection_enabled",
}
TIMESTAMP = "2026-11-22T12:00:00Z"


@dataclass
class Model:
    id: int
    name: str
    model: str
    endpoint: str | None
    identifier: str
    api_token: str | None
    provider: str = "API"  # AiSelfHostedModelProvider value


@dataclass
class License:
    id: int
    type: str  # online_cloud | offline_cloud | legacy_license
    plan: str
    starts_at: str = "2026-11-01"
    expires_at: str = "2027-11-01"
    activated_at: str | None = "2026-11-01"


@dataclass
class User:
    id: int
    username: str
    admin: bool = False


@dataclass
class Instance:
    version: str = "18.9.0-ee"
    duo_enterprise_seats: int | None = 10  # None: the license has no Duo Enterprise add-on
    license: License | None = field(default_factory=lambda: License(1, "online_cloud", "ultimate"))
    customers_portal_reachable: bool = True
    settings: dict[str, Any] = field(
        default_factory=lambda: {
            "outbound_local_requests_allowlist_raw": "",
            "allow_local_requests_from_web_hooks_and_services": False,
            "allow_local_requests_from_system_hooks": True,
            "disabled_direct_code_suggestions": False,
        }
    )
    duo: dict[str, Any] = field(
        default_factory=lambda: {
            "aiGatewayUrl": None,
            "aiGatewayTimeoutSeconds": 60,
            "duoAgentPlatformServiceUrl": None,
            "selfHostedDuoAgentPlatformServiceSecure": True,
        }
    )
    models: dict[int, Model] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, User] = field(
        default_factory=lambda: {
            "root": User(1, "root", admin=True),
            "alice": User(2, "alice"),
            "alice2": User(3, "alice2"),
        }
    )
    seats: set[int] = field(default_factory=set)
    next_model_id: int = 1
    # Payload errors the next call of a mutation answers with, as GitLab's validations do.
    mutation_errors: dict[str, list[str]] = field(default_factory=dict)

    def remove_license(self) -> None:
        """A fresh instance: no license, so no add-on purchase either."""
        self.license = None
        self.duo_enterprise_seats = None

    def activate(self, code: str) -> list[str]:
        """GitlabSubscriptions::ActivateService: payload errors, or a new license + add-ons."""
        if not self.customers_portal_reachable:
            return [CONNECTIVITY_ERROR]
        if code not in ACTIVATION_CODES:
            return [INVALID_CODE_ERROR]
        next_id = self.license.id + 1 if self.license else 1
        self.license = License(next_id, "online_cloud", "ultimate", activated_at="2026-11-22")
        self.duo_enterprise_seats = ACTIVATION_CODES[code]  # ProvisionServices::AddOns
        return []

    # ------------------------------------------------------------ REST

    def settings_view(self) -> dict[str, Any]:
        view = dict(self.settings)
        view["outbound_local_requests_allowlist_raw"] = "\n".join(self.allowlist())
        if self.duo_enterprise_seats is None:
            # Only exposed when an add-on grants code completion.
            view.pop("disabled_direct_code_suggestions", None)
        return view

    def allowlist(self) -> list[str]:
        raw = self.settings.get("outbound_local_requests_allowlist_raw") or ""
        for sep in ",;\t\r\n":
            raw = raw.replace(sep, " ")
        return [e for e in raw.split(" ") if e]

    def update_settings(self, values: dict[str, Any]) -> list[str]:
        unknown = sorted(set(values) - SETTINGS_KEYS)
        if unknown:
            return [f"unknown application setting(s): {', '.join(unknown)}"]
        if self.duo_enterprise_seats is None:
            values = {k: v for k, v in values.items() if k != "disabled_direct_code_suggestions"}
        self.settings.update(values)
        return []

    # ------------------------------------------------------------ GraphQL views

    def model_view(self, m: Model) -> dict[str, Any]:
        return {
            "id": MODEL_GID.format(m.id),
            "name": m.name,
            "model": m.model,
            "modelDisplayName": m.model.capitalize(),
            "endpoint": m.endpoint,
            "identifier": m.identifier,
            "provider": m.provider,
            "apiToken": m.api_token,
            "hasApiToken": bool(m.api_token),
            "releaseState": "GA" if m.model in GA_FAMILIES else "BETA",
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
            "featureSettings": lambda info, **_: {
                "nodes": [
                    self.feature_view(f)
                    for f in FEATURES
                    if self.features.get(f, {}).get("model_id") == m.id
                ]
            },
        }

    def feature_view(self, feature: str) -> dict[str, Any]:
        saved = self.features.get(feature, {"provider": "unassigned", "model_id": None})
        model = self.models.get(saved["model_id"]) if saved["model_id"] else None
        main, title = TITLES.get(feature, ("GitLab Duo Chat", feature))
        return {
            "feature": feature,
            "provider": saved["provider"],
            "title": title,
            "mainFeature": main,
            "releaseState": "GA",
            "compatibleLlms": FEATURES[feature],
            "selfHostedModel": self.model_view(model) if model else None,
            "validModels": lambda info, **_: {
                "nodes": [
                    self.model_view(m) for m in self.models.values() if m.model in FEATURES[feature]
                ]
            },
        }

    def license_view(self) -> dict[str, Any] | None:
        lic = self.license
        if lic is None:
            return None
        return {
            "id": LICENSE_GID.format(lic.id),
            "type": lic.type,
            "plan": lic.plan,
            "startsAt": lic.starts_at,
            "expiresAt": lic.expires_at,
            "activatedAt": lic.activated_at,
            "hasGitlabCreditsAddOn": False,
            "subscriptionName": None,
        }

    def purchase_view(self) -> dict[str, Any]:
        return {
            "id": PURCHASE_GID.format(1),
            "name": "DUO_ENTERPRISE",
            "purchasedQuantity": self.duo_enterprise_seats,
            "assignedQuantity": len(self.seats),
        }

    def add_on_user_view(self, user: User) -> dict[str, Any]:
        def assignments(info: Any, addOnPurchaseIds: list[str], **_: Any) -> dict[str, Any]:
            held = user.id in self.seats and PURCHASE_GID.format(1) in addOnPurchaseIds
            return {"nodes": [{"addOnPurchase": self.purchase_view()}] if held else []}

        return {
            "id": USER_GID.format(user.id),
            "username": user.username,
            "name": user.username.title(),
            "addOnAssignments": assignments,
        }

    # ------------------------------------------------------------ validation helpers

    def require_duo(self) -> None:
        if self.duo_enterprise_seats is None:
            raise GraphQLError(NOT_ALLOWED)

    def find_model(self, gid: str) -> Model | None:
        try:
            return self.models.get(int(gid.rsplit("/", 1)[1]))
        except (IndexError, ValueError):
            return None

    def model_errors(self, values: dict[str, Any], own_id: int | None) -> list[str]:
        errors = []
        if any(m.name == values["name"] and m.id != own_id for m in self.models.values()):
            errors.append("Name has already been taken")
        endpoint = values.get("endpoint")
        if not endpoint:
            if values.get("provider", "API") == "API":
                errors.append("Endpoint can't be blank")
        else:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                errors.append("Endpoint is blocked: Only allowed schemes are http, https")
        if len(values.get("identifier") or "") > 255:
            errors.append("Identifier is too long (maximum is 255 characters)")
        return errors

    def gateway_url_errors(self, url: str) -> list[str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return ["Ai gateway url is blocked: Only allowed schemes are http, https"]
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback and host not in self.allowlist():
            return ["Ai gateway url is blocked: Requests to localhost are not allowed"]
        return []
