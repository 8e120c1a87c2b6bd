"""The only place that talks to GitLab: python-gitlab REST and GraphQL.

Reads the current Duo state in a few requests, applies one change at a time, and
knows the schema differences between GitLab versions, detected by introspection.
Field names and operations follow GitLab's GraphQL schema (17.9 to 19.x): the single or
batch feature mapping, the optional duoSettings fields, and, from 19.x, the self-hosted
model's required `provider` input (its `endpoint` then optional) and the agent platform
TLS setting `selfHostedDuoAgentPlatformServiceSecure`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import gitlab
import httpx
import requests
from gql import GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
)

from duoctl import __version__

# gql logs every request body at DEBUG level, and bodies carry secrets (an activation code,
# model API keys): keep that logger above DEBUG whatever logging the caller sets up.
logging.getLogger("gql.transport.httpx").setLevel(logging.INFO)

USER_AGENT = f"duoctl/{__version__}"
MIN_VERSION = (17, 9)
MAX_RETRIES = 5
TIMEOUT_SECONDS = 30.0
DUO_ENTERPRISE = "DUO_ENTERPRISE"
LICENSE_FIX = (
    "The license lacks GitLab Duo Enterprise: no DUO_ENTERPRISE add-on purchase is active. "
    "Give duoctl the activation code of a subscription that includes GitLab Duo Enterprise "
    "(license.activation_code_file in the file, --activation-code-file, or "
    "GITLAB_ACTIVATION_CODE): online activation adds the add-on at once. Or activate it in "
    "Admin > Subscription, synchronize the subscription, then run again."
)
# CurrentLicense.type values (ee/app/models/license.rb).
ONLINE_CLOUD, OFFLINE_CLOUD, LEGACY_LICENSE = "online_cloud", "offline_cloud", "legacy_license"
# The payload error GitLab gives when it cannot reach the Customers Portal
# (ee/lib/gitlab/subscription_portal/clients/graphql.rb), and the text of a rejected code
# that GitLab's activation form looks for (admin/subscriptions/show/constants.js).
CONNECTIVITY_ERROR = "CONNECTIVITY_ERROR"
INVALID_CODE_ERROR = "invalid activation code"
REDACTED = "[activation code]"

# The agent platform service's TLS choice: a duoSettings field from GitLab 19.x; older
# versions read GitLab's DUO_AGENT_PLATFORM_SERVICE_SECURE environment variable instead.
AGENT_PLATFORM_SECURE = "selfHostedDuoAgentPlatformServiceSecure"
# Introduced-in versions of the optional duoSettingsUpdate arguments, for warnings.
DUO_SETTING_SINCE = {
    "duoAgentPlatformServiceUrl": "18.4",
    "aiGatewayTimeoutSeconds": "18.7",
}

T = TypeVar("T")


class GitLabError(Exception):
    """A GitLab request failed; the message names the cause and the fix."""


# ---------------------------------------------------------------- state types


@dataclass(frozen=True)
class AddOnPurchase:
    id: str
    name: str
    purchased: int
    assigned: int


@dataclass(frozen=True)
class LicenseInfo:
    """GraphQL `currentLicense` (never the license key itself)."""

    id: str
    type: str  # online_cloud | offline_cloud | legacy_license
    plan: str
    expires_at: str | None = None

    def describe(self) -> str:
        ends = f", expires {self.expires_at}" if self.expires_at else ""
        return f"{self.type} license, plan {self.plan}{ends}"


def describe_license(license: LicenseInfo | None) -> str:
    return license.describe() if license else "no license"


@dataclass(frozen=True)
class Capabilities:
    version: str
    batch_feature_update: bool
    duo_settings_inputs: frozenset[str]
    duo_settings_fields: frozenset[str]
    model_families: frozenset[str]
    features: frozenset[str]
    add_on_purchases: tuple[AddOnPurchase, ...]
    license: LicenseInfo | None = None
    # AiSelfHostedModelCreateInput fields, those of them that are required (NON_NULL),
    # AiSelfHostedModel fields, and the AiSelfHostedModelProvider values (19.x).
    model_inputs: frozenset[str] = frozenset()
    model_required_inputs: frozenset[str] = frozenset()
    model_fields: frozenset[str] = frozenset()
    model_providers: frozenset[str] = frozenset()

    def purchase(self, name: str) -> AddOnPurchase | None:
        return next((p for p in self.add_on_purchases if p.name == name), None)

    @property
    def sends_provider(self) -> bool:
        """The model mutations take `provider` (required from GitLab 19.x)."""
        return "provider" in self.model_inputs

    @property
    def reads_provider(self) -> bool:
        return "provider" in self.model_fields

    @property
    def endpoint_required(self) -> bool:
        """Before 19.x every self-hosted model needs an endpoint (`endpoint: String!`)."""
        return "endpoint" in self.model_required_inputs


@dataclass(frozen=True)
class RemoteModel:
    id: str
    name: str
    family: str  # upper case, as the AiAcceptedSelfHostedModels enum
    endpoint: str | None  # GitLab 19.x: BEDROCK and VERTEX_AI models may have none
    identifier: str
    api_token: str | None
    provider: str | None = None  # AiSelfHostedModelProvider value; None before 19.x


@dataclass(frozen=True)
class RemoteFeature:
    feature: str  # lower case, as stored
    provider: str  # lower case: self_hosted, vendored, disabled, unassigned
    model_name: str | None
    compatible_families: frozenset[str]  # upper case


@dataclass(frozen=True)
class RemoteUser:
    username: str
    id: str | None  # None: no such user
    has_seat: bool


@dataclass
class RemoteState:
    allowlist: list[str]
    disabled_direct_code_suggestions: bool | None
    duo_settings: dict[str, Any]
    models: list[RemoteModel]
    features: dict[str, RemoteFeature]
    users: dict[str, RemoteUser] = field(default_factory=dict)


def parse_version(text: str) -> tuple[int, int]:
    parts = text.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def split_allowlist(raw: str | None) -> list[str]:
    """GitLab splits the raw allowlist on commas, semicolons and whitespace."""
    if not raw:
        return []
    for sep in ",;\t\r\n":
        raw = raw.replace(sep, " ")
    return [entry for entry in raw.split(" ") if entry]


# ---------------------------------------------------------------- operations

PROBE_QUERY = """
query DuoProbe {
  metadata { version enterprise }
  featureSettingInput: __type(name: "AiFeatureSettingUpdateInput") { inputFields { name } }
  duoSettingsInput: __type(name: "DuoSettingsUpdateInput") { inputFields { name } }
  duoSettingsType: __type(name: "DuoSettings") { fields(includeDeprecated: true) { name } }
  acceptedModels: __type(name: "AiAcceptedSelfHostedModels") {
    enumValues(includeDeprecated: true) { name }
  }
  features: __type(name: "AiFeatures") { enumValues(includeDeprecated: true) { name } }
  modelInput: __type(name: "AiSelfHostedModelCreateInput") { inputFields { name type { kind } } }
  modelType: __type(name: "AiSelfHostedModel") { fields(includeDeprecated: true) { name } }
  modelProviders: __type(name: "AiSelfHostedModelProvider") {
    enumValues(includeDeprecated: true) { name }
  }
  addOnPurchases { id name purchasedQuantity assignedQuantity }
  currentLicense { id type plan expiresAt }
}
"""

MODELS_FIELDS = "id name model endpoint identifier apiToken"

FEATURES_QUERY_PART = """
  aiFeatureSettings {
    nodes { feature provider compatibleLlms selfHostedModel { id name } }
  }
"""

SEAT_USER_PART = """
  {alias}: selfManagedAddOnEligibleUsers(
    addOnType: DUO_ENTERPRISE, addOnPurchaseIds: [$purchaseId], search: {search}, first: 20
  ) {{
    nodes {{ id username addOnAssignments(addOnPurchaseIds: [$purchaseId]) {{
      nodes {{ addOnPurchase {{ name }} }}
    }} }}
  }}
  {user_alias}: user(username: {search}) {{ id username }}
"""

CREATE_MODEL = """
mutation CreateSelfHostedModel($input: AiSelfHostedModelCreateInput!) {
  aiSelfHostedModelCreate(input: $input) {
    selfHostedModel { id name model endpoint identifier }
    errors
  }
}
"""

UPDATE_MODEL = """
mutation UpdateSelfHostedModel($input: AiSelfHostedModelUpdateInput!) {
  aiSelfHostedModelUpdate(input: $input) {
    selfHostedModel { id name model endpoint identifier }
    errors
  }
}
"""

DELETE_MODEL = """
mutation DeleteSelfHostedModel($id: AiSelfHostedModelID!) {
  aiSelfHostedModelDelete(input: { id: $id }) { errors }
}
"""

FEATURES_UPDATE_BATCH = """
mutation MapFeaturesToModel($input: AiFeatureSettingUpdateInput!) {
  aiFeatureSettingUpdate(input: $input) {
    aiFeatureSettings { feature provider selfHostedModel { id name } }
    errors
  }
}
"""

FEATURE_UPDATE_LEGACY = """
mutation MapFeatureToModel($input: AiFeatureSettingUpdateInput!) {
  aiFeatureSettingUpdate(input: $input) {
    aiFeatureSetting { feature provider selfHostedModel { id name } }
    errors
  }
}
"""

DUO_SETTINGS_UPDATE = """
mutation UpdateDuoSettings($input: DuoSettingsUpdateInput!) {
  duoSettingsUpdate(input: $input) {
    duoSettings { %s }
    errors
  }
}
"""

ASSIGN_SEAT = """
mutation AssignDuoSeat($addOnPurchaseId: GitlabSubscriptionsAddOnPurchaseID!, $userId: UserID!) {
  userAddOnAssignmentCreate(input: { addOnPurchaseId: $addOnPurchaseId, userId: $userId }) {
    addOnPurchase { id name purchasedQuantity assignedQuantity }
    user { id username }
    errors
  }
}
"""

# GitLab's gitlabSubscriptionActivate (the same from 17.9 to 19.x; the add-on purchases
# are provisioned before it answers).
ACTIVATE_SUBSCRIPTION = """
mutation ActivateSubscription($code: String!) {
  gitlabSubscriptionActivate(input: { activationCode: $code }) {
    license { id plan type startsAt expiresAt }
    errors
  }
}
"""

DUO_SETTING_FIELDS = (
    "aiGatewayUrl",
    "aiGatewayTimeoutSeconds",
    "duoAgentPlatformServiceUrl",
    AGENT_PLATFORM_SECURE,
)


def _graphql_string(value: str) -> str:
    """A GraphQL string literal (JSON string syntax is valid GraphQL)."""
    import json

    return json.dumps(value)


# ---------------------------------------------------------------- client


class GitLabClient:
    """Reads and changes GitLab Duo Self-Hosted settings through python-gitlab."""

    def __init__(
        self,
        url: str,
        token: str,
        ca_file: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        """`timeout` and `max_retries`: status asks for an answer within seconds."""
        self.url = url.rstrip("/")
        self.max_retries = max_retries
        verify: bool | str = ca_file or True
        self._rest = gitlab.Gitlab(
            self.url,
            private_token=token,
            ssl_verify=verify,
            timeout=timeout,
            retry_transient_errors=True,
            user_agent=USER_AGENT,
        )
        # Our own httpx client, so that a private CA is given as an SSL context.
        http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=timeout,
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
        )
        self._gql = gitlab.GraphQL(
            self.url,
            client=http,
            max_retries=max_retries,
            retry_transient_errors=True,
        )
        self.mutations = 0

    def close(self) -> None:
        self._gql.__exit__()
        self._rest.session.close()

    # ------------------------------------------------------------ transport

    def _rest_call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except gitlab.exceptions.GitlabAuthenticationError as exc:
            raise GitLabError(_unauthorized(what)) from exc
        except gitlab.exceptions.GitlabError as exc:
            raise GitLabError(_http_failure(what, exc.response_code, exc.error_message)) from exc
        except requests.exceptions.SSLError as exc:
            raise GitLabError(_tls_failure(self.url, exc)) from exc
        except requests.RequestException as exc:
            raise GitLabError(_unreachable(self.url, exc)) from exc

    def _graphql(
        self, what: str, query: str, variables: dict[str, Any] | None = None, *, mutation: bool
    ) -> dict[str, Any]:
        request = GraphQLRequest(query, variable_values=variables)
        attempt = 0
        while True:
            try:
                # python-gitlab parses its argument with gql.gql(), which accepts a
                # GraphQLRequest too: that is how variables reach the server.
                result = self._gql.execute(cast(str, request))
                if mutation:
                    self.mutations += 1
                return cast(dict[str, Any], result)
            except TransportConnectionFailed as exc:
                # A request that never reached GitLab is safe to repeat; a read is too.
                never_sent = isinstance(exc.__cause__, httpx.ConnectError)
                if (never_sent or not mutation) and attempt < self.max_retries:
                    time.sleep(0.2 * 2**attempt)
                    attempt += 1
                    continue
                cause = exc.__cause__ or exc
                if isinstance(cause, httpx.ConnectError) and "SSL" in str(cause):
                    raise GitLabError(_tls_failure(self.url, cause)) from exc
                raise GitLabError(_unreachable(self.url, cause)) from exc
            except TransportQueryError as exc:
                messages = [str(e.get("message", e)) for e in (exc.errors or [])] or [str(exc)]
                raise GitLabError(
                    f"{what}: GitLab answered with errors: {'; '.join(messages)}"
                ) from None
            except TransportProtocolError as exc:
                raise GitLabError(
                    f"{what}: {self.url}/api/graphql did not answer like GitLab's GraphQL API "
                    f"({exc}). Check that the URL is the GitLab root URL."
                ) from exc
            except gitlab.exceptions.GitlabAuthenticationError as exc:
                raise GitLabError(_unauthorized(what)) from exc
            except gitlab.exceptions.GitlabHttpError as exc:
                raise GitLabError(
                    _http_failure(what, exc.response_code, exc.error_message)
                ) from exc

    # ------------------------------------------------------------ reads

    def application_settings(self) -> dict[str, Any]:
        """GET /application/settings; also proves the token is an admin's."""
        return cast(
            dict[str, Any],
            self._rest_call(
                "reading the application settings",
                lambda: self._rest.http_get("/application/settings", max_retries=MAX_RETRIES),
            ),
        )

    def probe(self) -> Capabilities:
        data = self._graphql("detecting the GitLab version", PROBE_QUERY, mutation=False)
        version = (data.get("metadata") or {}).get("version") or "unknown"
        if parse_version(version) < MIN_VERSION or not data.get("duoSettingsInput"):
            raise GitLabError(
                f"GitLab {version} is too old for GitLab Duo Self-Hosted automation: "
                f"version 17.9 or later is required. Upgrade GitLab, then run again."
            )

        def names(key: str, sub: str) -> frozenset[str]:
            return frozenset(item["name"] for item in (data.get(key) or {}).get(sub) or [])

        feature_inputs = names("featureSettingInput", "inputFields")
        model_inputs = (data.get("modelInput") or {}).get("inputFields") or []
        return Capabilities(
            version=version,
            batch_feature_update="features" in feature_inputs,
            duo_settings_inputs=names("duoSettingsInput", "inputFields"),
            duo_settings_fields=names("duoSettingsType", "fields"),
            model_families=names("acceptedModels", "enumValues"),
            features=frozenset(n.lower() for n in names("features", "enumValues")),
            add_on_purchases=tuple(
                AddOnPurchase(p["id"], p["name"], p["purchasedQuantity"], p["assignedQuantity"])
                for p in data.get("addOnPurchases") or []
            ),
            license=_license_info(data.get("currentLicense")),
            model_inputs=frozenset(f["name"] for f in model_inputs),
            model_required_inputs=frozenset(
                f["name"] for f in model_inputs if (f.get("type") or {}).get("kind") == "NON_NULL"
            ),
            model_fields=names("modelType", "fields"),
            model_providers=names("modelProviders", "enumValues"),
        )

    def state(
        self, caps: Capabilities, settings: dict[str, Any], seats: Iterable[str]
    ) -> RemoteState:
        """Everything the reconciler compares, in one GraphQL request."""
        settings_fields = [f for f in DUO_SETTING_FIELDS if f in caps.duo_settings_fields]
        purchase = caps.purchase(DUO_ENTERPRISE)
        seat_list = list(seats) if purchase else []
        model_fields = MODELS_FIELDS + (" provider" if caps.reads_provider else "")
        parts = [
            f"  duoSettings {{ {' '.join(settings_fields)} }}",
            f"  aiSelfHostedModels(first: 100) {{ nodes {{ {model_fields} }} "
            f"pageInfo {{ hasNextPage }} }}",
            FEATURES_QUERY_PART,
        ]
        for i, username in enumerate(seat_list):
            parts.append(
                SEAT_USER_PART.format(
                    alias=f"seat{i}", user_alias=f"user{i}", search=_graphql_string(username)
                )
            )
        header = (
            "query DuoState($purchaseId: GitlabSubscriptionsAddOnPurchaseID!)"
            if seat_list
            else "query DuoState"
        )
        variables = {"purchaseId": purchase.id} if seat_list and purchase else None
        data = self._graphql(
            "reading the GitLab Duo configuration",
            header + " {\n" + "\n".join(parts) + "\n}",
            variables,
            mutation=False,
        )
        connection = data.get("aiSelfHostedModels")
        if connection is None and purchase is None:
            raise GitLabError(license_fix(caps.license))
        if connection is None:
            raise GitLabError(
                "GitLab does not let this token manage self-hosted models "
                "(aiSelfHostedModels is null). The token must belong to an administrator, "
                "and the instance needs an active GitLab Duo Enterprise add-on: check "
                "Admin > Subscription and synchronize the subscription."
            )
        if connection.get("pageInfo", {}).get("hasNextPage"):
            raise GitLabError("more than 100 self-hosted models exist; this tool handles 100")
        models = [
            RemoteModel(
                id=n["id"],
                name=n["name"],
                family=n["model"].upper(),
                endpoint=n.get("endpoint"),
                identifier=n.get("identifier") or "",
                api_token=n.get("apiToken"),
                provider=n.get("provider"),
            )
            for n in connection.get("nodes") or []
        ]
        features = {}
        for node in (data.get("aiFeatureSettings") or {}).get("nodes") or []:
            model = node.get("selfHostedModel")
            features[node["feature"]] = RemoteFeature(
                feature=node["feature"],
                provider=node["provider"],
                model_name=model["name"] if model else None,
                compatible_families=frozenset(c.upper() for c in node.get("compatibleLlms") or []),
            )
        users = {}
        for i, username in enumerate(seat_list):
            user = data.get(f"user{i}")
            holders = [
                n
                for n in (data.get(f"seat{i}") or {}).get("nodes") or []
                if n["username"] == username
            ]
            has_seat = any(
                a["addOnPurchase"]["name"] == DUO_ENTERPRISE
                for h in holders
                for a in (h.get("addOnAssignments") or {}).get("nodes") or []
            )
            users[username] = RemoteUser(username, user["id"] if user else None, has_seat)
        return RemoteState(
            allowlist=split_allowlist(settings.get("outbound_local_requests_allowlist_raw")),
            disabled_direct_code_suggestions=settings.get("disabled_direct_code_suggestions"),
            duo_settings=data.get("duoSettings") or {},
            models=models,
            features=features,
            users=users,
        )

    # ------------------------------------------------------------ changes

    def activate_subscription(self, code: str, source: str) -> LicenseInfo | None:
        """gitlabSubscriptionActivate; `source` names where the code came from, for errors.

        The code is sent in the variables only, and replaced in every message GitLab returns.
        """
        what = "activating the subscription"
        try:
            data = self._graphql(what, ACTIVATE_SUBSCRIPTION, {"code": code}, mutation=True)
        except GitLabError as exc:
            raise GitLabError(str(exc).replace(code, REDACTED)) from None
        payload = data.get("gitlabSubscriptionActivate") or {}
        errors = [str(e).replace(code, REDACTED) for e in payload.get("errors") or []]
        if errors:
            raise GitLabError(_activation_failure(errors, source))
        return _license_info(payload.get("license"))

    def update_application_settings(self, changes: dict[str, Any]) -> None:
        self.mutations += 1
        self._rest_call(
            "updating the application settings",
            lambda: self._rest.http_put(
                "/application/settings", post_data=changes, max_retries=MAX_RETRIES
            ),
        )

    def update_duo_settings(self, values: dict[str, Any]) -> None:
        fields = " ".join(values) or "updatedAt"
        data = self._graphql(
            "updating the GitLab Duo settings",
            DUO_SETTINGS_UPDATE % fields,
            {"input": values},
            mutation=True,
        )
        _raise_payload_errors("GitLab Duo settings", data["duoSettingsUpdate"])

    def create_model(self, values: dict[str, Any]) -> str:
        """aiSelfHostedModelCreate; unset values (an endpoint-less model's) are left out."""
        given = {k: v for k, v in values.items() if v is not None}
        data = self._graphql(
            f"creating self-hosted model {values['name']!r}",
            CREATE_MODEL,
            {"input": given},
            mutation=True,
        )
        payload = data["aiSelfHostedModelCreate"]
        _raise_payload_errors(f"self-hosted model {values['name']!r}", payload)
        return cast(str, payload["selfHostedModel"]["id"])

    def update_model(self, model_id: str, values: dict[str, Any]) -> None:
        """aiSelfHostedModelUpdate; a None endpoint is sent as null, which removes it."""
        data = self._graphql(
            f"updating self-hosted model {values['name']!r}",
            UPDATE_MODEL,
            {"input": {"id": model_id, **values}},
            mutation=True,
        )
        _raise_payload_errors(
            f"self-hosted model {values['name']!r}", data["aiSelfHostedModelUpdate"]
        )

    def delete_model(self, model_id: str, name: str) -> None:
        data = self._graphql(
            f"deleting self-hosted model {name!r}", DELETE_MODEL, {"id": model_id}, mutation=True
        )
        _raise_payload_errors(f"self-hosted model {name!r}", data["aiSelfHostedModelDelete"])

    def update_features(
        self, caps: Capabilities, features: list[str], provider: str, model_id: str | None
    ) -> None:
        base: dict[str, Any] = {"provider": provider.upper()}
        if model_id:
            base["aiSelfHostedModelId"] = model_id
        if caps.batch_feature_update:
            data = self._graphql(
                f"mapping {', '.join(features)}",
                FEATURES_UPDATE_BATCH,
                {"input": {"features": [f.upper() for f in features], **base}},
                mutation=True,
            )
            _raise_payload_errors(
                f"feature(s) {', '.join(features)}", data["aiFeatureSettingUpdate"]
            )
            return
        for feature in features:  # GitLab 17.9: one feature per call
            data = self._graphql(
                f"mapping {feature}",
                FEATURE_UPDATE_LEGACY,
                {"input": {"feature": feature.upper(), **base}},
                mutation=True,
            )
            _raise_payload_errors(f"feature {feature}", data["aiFeatureSettingUpdate"])

    def assign_seat(self, purchase_id: str, user_id: str, username: str) -> None:
        data = self._graphql(
            f"assigning a GitLab Duo Enterprise seat to {username}",
            ASSIGN_SEAT,
            {"addOnPurchaseId": purchase_id, "userId": user_id},
            mutation=True,
        )
        _raise_payload_errors(f"seat for {username}", data["userAddOnAssignmentCreate"])


# ---------------------------------------------------------------- messages


def _license_info(node: dict[str, Any] | None) -> LicenseInfo | None:
    if not node:
        return None
    return LicenseInfo(
        str(node["id"]), node.get("type") or "", node.get("plan") or "", node.get("expiresAt")
    )


def license_fix(license: LicenseInfo | None) -> str:
    """The missing-add-on message, with what the current license means for it."""
    if license is None:
        return f"{LICENSE_FIX} (GitLab has no license now.)"
    current = f"The current license ({license.describe()})"
    if license.type == LEGACY_LICENSE:
        why = f"{current} is a legacy license file: GitLab provisions add-ons from cloud licenses."
    elif license.type == OFFLINE_CLOUD:
        why = (
            f"{current} is an offline cloud license: loaded from a file, it gets its add-ons "
            f"at GitLab's daily subscription sync (00:30), not at once."
        )
    else:
        why = f"{current} has no GitLab Duo Enterprise add-on, or no seats in it."
    return f"{LICENSE_FIX} {why}"


def _activation_failure(errors: list[str], source: str) -> str:
    text = "; ".join(errors)
    if CONNECTIVITY_ERROR in text:
        fix = (
            "GitLab could not reach the GitLab Customers Portal (customers.gitlab.com): online "
            "activation needs outbound HTTPS from the GitLab server. Allow it (firewall, proxy) "
            "and run again, or, offline, load a license file instead (`duoctl deploy "
            "--license-file`); the add-on then arrives with GitLab's daily subscription sync."
        )
    elif INVALID_CODE_ERROR in text.lower():
        fix = (
            f"Check the code in {source}: copy it again from the Customers Portal (Manage "
            f"purchases) or the purchase email, then run again."
        )
    else:
        fix = (
            "Check the subscription in the Customers Portal (it must be active and include "
            "GitLab Duo Enterprise), then run again."
        )
    return (
        f"activating the subscription: GitLab refused the activation code from {source}: "
        f"{text}. {fix} Nothing was changed."
    )


def _raise_payload_errors(subject: str, payload: dict[str, Any] | None) -> None:
    errors = (payload or {}).get("errors") or []
    if errors:
        raise GitLabError(f"{subject}: GitLab refused the change: {'; '.join(errors)}")


def _unauthorized(what: str) -> str:
    return (
        f"{what}: GitLab rejected the token (HTTP 401). The token is invalid, expired or "
        f"revoked, or lacks the `api` scope. Create a personal access token for an "
        f"administrator with the `api` scope and pass it with --token-file or GITLAB_TOKEN."
    )


def _http_failure(what: str, code: int | None, message: Any) -> str:
    if code == 403:
        return (
            f"{what}: permission denied (HTTP 403). An administrator's token is needed; "
            f"when Admin Mode is on, the token also needs the `admin_mode` scope."
        )
    if code == 404:
        return (
            f"{what}: not found (HTTP 404). Check that the GitLab URL is the instance's root URL."
        )
    text = message.decode() if isinstance(message, bytes) else str(message)
    return f"{what}: GitLab answered HTTP {code}: {text[:300]}"


def _unreachable(url: str, exc: BaseException) -> str:
    return (
        f"cannot reach GitLab at {url}: {exc.__class__.__name__}: {exc}. Check the URL "
        f"(--gitlab-url, gitlab.url, GITLAB_URL), DNS and the firewall."
    )


def _tls_failure(url: str, exc: BaseException) -> str:
    return (
        f"TLS verification failed for {url}: {exc}. If GitLab uses a private CA, pass its "
        f"certificate with --ca-file."
    )
