"""Desired state (duo.yml) against current state (GitLab): a plan, its checks, applying it.

`make_plan` is pure: it compares a `DuoConfig` with a `RemoteState` and returns every
change in the order it must be applied, plus the problems that must stop the run before
anything changes. `apply_plan` performs the changes through a `GitLabClient`.

A subscription activation comes first and on its own (`plan_activation`): GitLab shows the
Duo state only once the GitLab Duo Enterprise add-on exists, so the rest is planned after it.
`activation_problems` are the checks that can run before it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from duoctl.config import (
    AGENT_PLATFORM_FEATURES,
    DISABLED,
    VENDORED,
    ActivationCode,
    DuoConfig,
    ModelSection,
    is_private_host,
)
from duoctl.gitlab_api import (
    AGENT_PLATFORM_SECURE,
    DUO_ENTERPRISE,
    DUO_SETTING_SINCE,
    OFFLINE_CLOUD,
    Capabilities,
    GitLabClient,
    RemoteModel,
    RemoteState,
    describe_license,
    license_fix,
)

SELF_HOSTED = "self_hosted"
SELF_HOSTED_DAP = "SELF_HOSTED_DAP"  # add-on an offline cloud license needs for the DAP features


@dataclass
class Change:
    kind: str  # license | allowlist | settings | gateway | model | feature | seat
    target: str
    action: str  # activate | create | update | delete | assign
    details: dict[str, Any] = field(default_factory=dict)
    # What apply_plan needs; never printed (it may hold an API key or an activation code).
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("payload")
        return data


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _lower_list(values: frozenset[str]) -> str:
    return ", ".join(sorted(v.lower() for v in values))


def _host(url: str) -> str:
    host = urlsplit(url if "://" in url else f"//{url}").hostname
    return host or url


# ---------------------------------------------------------------- planning


def plan_activation(caps: Capabilities, code: ActivationCode | None) -> Change | None:
    """Activate the subscription only while no GitLab Duo Enterprise add-on is active."""
    if code is None or caps.purchase(DUO_ENTERPRISE) is not None:
        return None
    return Change(
        "license",
        "subscription",
        "activate",
        {"code_from": code.source, "current": describe_license(caps.license)},
        {"activation_code": code.value},
    )


def activation_problems(cfg: DuoConfig, caps: Capabilities) -> list[str]:
    """What can be checked before an activation: what GitLab's schema offers and requires."""
    problems = [p for m in cfg.models for p in _model_problems(m, caps)]
    problems += [p for f in sorted(cfg.features) if (p := _feature_problem(f, caps))]
    return problems


def _model_problems(model: ModelSection, caps: Capabilities) -> list[str]:
    """The model's family, provider and endpoint against the instance's schema."""
    problems = []
    family = _family_problem(model, caps)
    if family:
        problems.append(family)
    provider = model.provider_value()
    if caps.sends_provider and caps.model_providers and provider not in caps.model_providers:
        problems.append(
            f"models.{model.name}: provider {provider.lower()} is not offered by GitLab "
            f"{caps.version}; valid here: {_lower_list(caps.model_providers)}"
        )
    if model.endpoint is None and caps.endpoint_required:
        problems.append(
            f"models.{model.name}: GitLab {caps.version} needs an endpoint for every "
            f"self-hosted model (a {provider.lower()} model without one needs GitLab 19.x, "
            f"where models have a provider); add the endpoint"
        )
    return problems


def _family_problem(model: ModelSection, caps: Capabilities) -> str | None:
    if caps.model_families and model.family not in caps.model_families:
        return (
            f"models.{model.name}: family {model.family.lower()} is not offered by GitLab "
            f"{caps.version}; valid here: {_lower_list(caps.model_families)}"
        )
    return None


def _feature_problem(feature: str, caps: Capabilities) -> str | None:
    if caps.features and feature not in caps.features:
        return (
            f"features.{feature}: GitLab {caps.version} has no such feature; valid here: "
            f"{', '.join(sorted(caps.features))}"
        )
    return None


def _plan_application_settings(cfg: DuoConfig, state: RemoteState, plan: Plan) -> None:
    # GitLab blocks requests to private addresses unless allowlisted; public hosts (a cloud
    # model platform's endpoint) need no entry.
    hosts = [_host(cfg.gateway.url)] + [_host(m.endpoint) for m in cfg.models if m.endpoint]
    wanted = [h for h in hosts if is_private_host(h)] + cfg.outbound_allowlist
    missing = list(dict.fromkeys(e for e in wanted if e not in state.allowlist))
    if missing:
        plan.changes.append(
            Change(
                "allowlist",
                "outbound_local_requests_allowlist_raw",
                "update",
                {"add": missing},
                {"outbound_local_requests_allowlist_raw": "\n".join(state.allowlist + missing)},
            )
        )
    if is_private_host(_host(cfg.gateway.url)):
        if state.disabled_direct_code_suggestions is None:
            plan.warnings.append(
                "disabled_direct_code_suggestions is not exposed by this GitLab (it needs an "
                "add-on that grants code completion); IDEs may try to reach the private gateway "
                "directly."
            )
        elif not state.disabled_direct_code_suggestions:
            plan.changes.append(
                Change(
                    "settings",
                    "disabled_direct_code_suggestions",
                    "update",
                    {"from": False, "to": True, "why": "the gateway URL is a private address"},
                    {"disabled_direct_code_suggestions": True},
                )
            )


def _plan_gateway(cfg: DuoConfig, caps: Capabilities, state: RemoteState, plan: Plan) -> None:
    desired: dict[str, Any] = {"aiGatewayUrl": cfg.gateway.url}
    optional: dict[str, Any] = {
        "aiGatewayTimeoutSeconds": cfg.gateway.timeout_seconds,
        "duoAgentPlatformServiceUrl": cfg.gateway.agent_platform_url,
        AGENT_PLATFORM_SECURE: cfg.gateway.agent_platform_secure,
    }
    if AGENT_PLATFORM_SECURE in caps.duo_settings_inputs:
        # Where GitLab has the setting, its default (TLS) must follow the URL's plain gRPC.
        optional[AGENT_PLATFORM_SECURE] = cfg.gateway.agent_platform_tls()
    for name, value in optional.items():
        if value is None:
            continue
        if name not in caps.duo_settings_inputs:
            plan.warnings.append(_unsupported_setting(name, caps.version))
            continue
        desired[name] = value
    current = state.duo_settings
    changed = {k: v for k, v in desired.items() if not _same_setting(current.get(k), v)}
    if changed:
        plan.changes.append(
            Change(
                "gateway",
                "duo settings",
                "update",
                {k: {"from": current.get(k), "to": v} for k, v in changed.items()},
                changed,
            )
        )


def _unsupported_setting(name: str, version: str) -> str:
    if name == AGENT_PLATFORM_SECURE:
        return (
            f"gateway setting {name} (gateway.agent_platform_secure) skipped: GitLab {version} "
            f"has no API for it (GitLab 19.4 has). This version takes the agent platform's TLS "
            f"choice from GitLab's DUO_AGENT_PLATFORM_SERVICE_SECURE environment variable "
            f"(gitlab_rails['env'], 'DUO_AGENT_PLATFORM_SERVICE_SECURE' => false for a plain "
            f"host:port)"
        )
    return (
        f"gateway setting {name} skipped: it needs GitLab {DUO_SETTING_SINCE[name]} "
        f"or later (this instance runs {version})"
    )


def _same_setting(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return current is wanted  # None (never set) is not False
    return str(current or "").rstrip("/") == str(wanted).rstrip("/")


def _model_values(
    cfg: DuoConfig, caps: Capabilities, name: str
) -> tuple[dict[str, Any], str | None]:
    model = cfg.model(name)
    values: dict[str, Any] = {"name": model.name, "model": model.family, "endpoint": model.endpoint}
    if model.identifier:
        values["identifier"] = model.identifier
    if caps.sends_provider:
        values["provider"] = model.provider_value()
    return values, model.api_key()


def _plan_models(cfg: DuoConfig, caps: Capabilities, state: RemoteState, plan: Plan) -> None:
    remote = {m.name: m for m in state.models}
    for model in cfg.models:
        problems = _model_problems(model, caps)
        if problems:
            plan.problems.extend(problems)
            continue
        values, api_key = _model_values(cfg, caps, model.name)
        payload = dict(values, **({"apiToken": api_key} if api_key else {}))
        current = remote.get(model.name)
        if current is None:
            plan.changes.append(
                Change("model", model.name, "create", _model_details(values), payload)
            )
            continue
        diff = _model_diff(current, values, api_key)
        if diff:
            plan.changes.append(Change("model", model.name, "update", diff, payload))
    if cfg.prune_models:
        listed = {m.name for m in cfg.models}
        for current in state.models:
            if current.name not in listed:
                plan.changes.append(
                    Change(
                        "model",
                        current.name,
                        "delete",
                        {"endpoint": current.endpoint},
                        {"id": current.id},
                    )
                )


def _model_details(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "name" and v is not None}


def _model_diff(
    current: RemoteModel, values: dict[str, Any], api_key: str | None
) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    pairs = {
        "model": (current.family, values["model"]),
        "endpoint": (current.endpoint, values["endpoint"]),
        "identifier": (current.identifier, values.get("identifier", current.identifier)),
    }
    if "provider" in values and current.provider is not None:
        pairs["provider"] = (current.provider, values["provider"])
    for key, (old, new) in pairs.items():
        if old != new:
            diff[key] = {"from": old, "to": new}
    if api_key is not None and current.api_token != api_key:
        diff["apiToken"] = "changed"
    return diff


def _plan_features(cfg: DuoConfig, caps: Capabilities, state: RemoteState, plan: Plan) -> None:
    families = {m.name: m.family for m in cfg.models}
    for feature, target in sorted(cfg.features.items()):
        problem = _feature_problem(feature, caps)
        if problem:
            plan.problems.append(problem)
            continue
        current = state.features.get(feature)
        if current is None:
            plan.problems.append(_unavailable_feature(feature, caps))
            continue
        provider = target if target in (VENDORED, DISABLED) else SELF_HOSTED
        model = target if provider == SELF_HOSTED else None
        family = families.get(target)
        if family and current.compatible_families and family not in current.compatible_families:
            plan.problems.append(
                f"features.{feature}: model {target!r} ({family.lower()}) is not compatible; "
                f"compatible families: {_lower_list(current.compatible_families)}"
            )
            continue
        if current.provider == provider and current.model_name == model:
            continue
        plan.changes.append(
            Change(
                "feature",
                feature,
                "update",
                {
                    "from": current.model_name or current.provider,
                    "to": model or provider,
                },
                {"provider": provider, "model": model},
            )
        )


def _unavailable_feature(feature: str, caps: Capabilities) -> str:
    beta = (
        "Beta features appear only after an administrator turns on 'Use beta models and "
        "features in GitLab Duo Self-Hosted' (Admin > GitLab Duo; there is no API for it)."
    )
    if feature not in AGENT_PLATFORM_FEATURES:
        return f"features.{feature}: not available on this instance. {beta}"
    dap = (
        f"GitLab 19.x offers the agent platform features without that setting, but with an "
        f"offline cloud license only when it has the {SELF_HOSTED_DAP} add-on"
    )
    offline = caps.license is not None and caps.license.type == OFFLINE_CLOUD
    if offline and caps.purchase(SELF_HOSTED_DAP) is None:
        return (
            f"features.{feature}: not available on this instance: {dap}, and this offline "
            f"cloud license has none. Add it to the subscription, or use an online cloud "
            f"license. (Before 19.x: {beta})"
        )
    return f"features.{feature}: not available on this instance. {beta} ({dap}.)"


def _plan_seats(cfg: DuoConfig, caps: Capabilities, state: RemoteState, plan: Plan) -> None:
    if not cfg.seats:
        return
    purchase = caps.purchase(DUO_ENTERPRISE)
    if purchase is None:
        plan.problems.append(f"seats: {license_fix(caps.license)}")
        return
    needed = []
    for username in cfg.seats:
        user = state.users.get(username)
        if user is None or user.id is None:
            plan.problems.append(f"seats: user {username!r} does not exist on this GitLab")
        elif not user.has_seat:
            needed.append(user)
    free = purchase.purchased - purchase.assigned
    if len(needed) > free:
        plan.problems.append(
            f"seats: {len(needed)} new GitLab Duo Enterprise seat(s) needed but only {free} of "
            f"{purchase.purchased} are free; buy more seats or remove users from seats:"
        )
        return
    for user in needed:
        plan.changes.append(
            Change(
                "seat",
                user.username,
                "assign",
                {"add_on": DUO_ENTERPRISE},
                {"purchase_id": purchase.id, "user_id": user.id},
            )
        )


def make_plan(cfg: DuoConfig, caps: Capabilities, state: RemoteState) -> Plan:
    """Every change, in the order it must be applied, and the problems that block it."""
    plan = Plan()
    if caps.purchase(DUO_ENTERPRISE) is None and (cfg.models or cfg.features):
        plan.problems.append(license_fix(caps.license))
    _plan_application_settings(cfg, state, plan)
    _plan_gateway(cfg, caps, state, plan)
    _plan_models(cfg, caps, state, plan)
    _plan_features(cfg, caps, state, plan)
    _plan_seats(cfg, caps, state, plan)
    plan.problems = list(dict.fromkeys(plan.problems))
    return plan


# ---------------------------------------------------------------- applying


def apply_activation(client: GitLabClient, change: Change) -> None:
    client.activate_subscription(change.payload["activation_code"], change.details["code_from"])


def apply_plan(client: GitLabClient, caps: Capabilities, state: RemoteState, plan: Plan) -> None:
    """Apply the changes in order; the first failure stops everything after it.

    A license change is applied beforehand by `apply_activation` and is skipped here.
    """
    settings = [c for c in plan.changes if c.kind in ("allowlist", "settings")]
    if settings:
        merged: dict[str, Any] = {}
        for change in settings:
            merged.update(change.payload)
        client.update_application_settings(merged)
    model_ids = {m.name: m.id for m in state.models}
    feature_groups: dict[tuple[str, str | None], list[str]] = {}
    for change in plan.changes:
        if change.kind == "gateway":
            client.update_duo_settings(change.payload)
        elif change.kind == "model" and change.action == "create":
            model_ids[change.target] = client.create_model(change.payload)
        elif change.kind == "model" and change.action == "update":
            client.update_model(model_ids[change.target], change.payload)
        elif change.kind == "model" and change.action == "delete":
            client.delete_model(change.payload["id"], change.target)
        elif change.kind == "feature":
            key = (change.payload["provider"], change.payload["model"])
            feature_groups.setdefault(key, []).append(change.target)
    for (provider, model), features in feature_groups.items():
        client.update_features(caps, features, provider, model_ids[model] if model else None)
    for change in plan.changes:
        if change.kind == "seat":
            client.assign_seat(
                change.payload["purchase_id"], change.payload["user_id"], change.target
            )
