"""Test double of the GitLab EE API used by `duoctl configure`, on loopback.

Stands in for: a GitLab Self-Managed instance (17.9 to 19.x) with a GitLab Duo
Enterprise license (an online cloud license), or without a license
(`instance.remove_license()`), together with the GitLab Customers Portal behind its
online activation: `gitlabSubscriptionActivate` with `ACTIVATION_CODE` saves an online
cloud license and provisions a DUO_ENTERPRISE add-on purchase of 10 seats before it
answers; an unknown code gets GitLab's payload error `invalid activation code`, an
unreachable portal (`instance.customers_portal_reachable = False`) `CONNECTIVITY_ERROR`;
`currentLicense` reads the license. Contract followed: `/api/graphql` executes every
document with graphql-core against GitLab's real schema (the excerpts in `schemas/`, chosen
by version: see schema.py), so a document GitLab would reject fails here too and is
recorded in `invalid_documents` (on 19.x, a self-hosted model mutation without its required
`provider` input is refused by variable coercion, as GitLab refuses it); the REST endpoints
`/api/v4/version` and `/api/v4/application/settings` answer like GitLab (admin token
required, 401/403 bodies as GitLab sends them), as does
`/api/v4/admin/batched_background_migrations` (see batched_background_migrations);
`POST /api/v4/code_suggestions/completions` answers like GitLab's Code Suggestions API
(ee/lib/api/code_suggestions.rb): 400 for a missing `current_file` field, 401 with
`X-GitLab-Error-Origin: monolith` for a user without a Duo seat or with Code Completion not
mapped to a self-hosted model, else the gateway's answer in the OpenAI completion shape
(`choices[0].text` = `completion_text`); with `forward_to_gateway` on, the request goes to the
registered AI gateway as GitLab sends it (gateway_client.py) and its answer comes back as is.
Every request is logged (GraphQL documents with their variables) so tests can count requests
and mutations and look at what was sent.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from graphql import GraphQLError, OperationType, execute_sync, parse, validate
from graphql.error import GraphQLSyntaxError

from tests.doubles.gitlab_api import gateway_client

from .instance import (
    FEATURES,
    MODEL_GID,
    NOT_ALLOWED,
    PURCHASE_GID,
    USER_GID,
    Instance,
    Model,
)
from .schema import schema_for
from .tls import make_certificates

ADMIN_TOKEN = "glpat-admin-0123456789abcdef"
USER_TOKEN = "glpat-user-0123456789abcdef"


@dataclass
class Logged:
    method: str
    path: str
    operation: str  # "query", "mutation", or "" for REST
    name: str  # GraphQL operation name or REST path
    document: str = ""  # the GraphQL document
    variables: dict[str, Any] = field(default_factory=dict)  # its variables

    @property
    def is_write(self) -> bool:
        rest_write = self.operation == "" and self.method in ("PUT", "POST", "DELETE")
        return self.operation == "mutation" or rest_write


class GitLabDouble:
    """A running double; use `gitlab_double()` to start one."""

    def __init__(self, version: str = "18.9.0-ee") -> None:
        self.instance = Instance(version=version)
        self.tokens = {ADMIN_TOKEN: True, USER_TOKEN: False}  # token -> is admin
        self.log: list[Logged] = []
        self.invalid_documents: list[str] = []
        self.fail_next: list[int] = []  # HTTP status codes to answer the next requests with
        self.completion_text = "    if n < 2:\n        return n\n"
        self.forward_to_gateway = False  # code completions: ask the registered gateway
        self.url = ""
        # Batched background migrations per database (see batched_background_migrations).
        self.migrations: dict[str, list[dict[str, Any]]] = {"main": [], "ci": []}
        self.migrations_finish_after: int | None = None
        self._lock = threading.Lock()

    def upgrade(self, version: str, migrations_after: int = 2) -> None:
        """What upgrading the GitLab it stands for does here: the new version answers (and its
        schema), the upgrade's batched background migrations are queued (finished after
        `migrations_after` listings), and the AI gateway and agent platform URLs are dropped,
        as an upgrade to 19.2 was reported to do."""
        with self._lock:
            self.instance.version = version
            queued = len(self.migrations["main"]) + 1
            self.migrations["main"].append(migration(queued, "active", "BackfillAfterUpgrade"))
            self.migrations_finish_after = migrations_after
            self.instance.duo.update(aiGatewayUrl=None, duoAgentPlatformServiceUrl=None)

    # ------------------------------------------------------------ counters

    @property
    def requests(self) -> int:
        return len(self.log)

    @property
    def writes(self) -> int:
        return sum(1 for entry in self.log if entry.is_write)

    def reset_log(self) -> None:
        self.log.clear()

    def received(self, operation: str) -> list[Logged]:
        """The GraphQL requests of one operation name, oldest first."""
        return [entry for entry in self.log if entry.name == operation]

    # ------------------------------------------------------------ GraphQL

    def graphql(self, body: dict[str, Any], admin: bool) -> dict[str, Any]:
        schema = schema_for(self.instance.version)
        query = body.get("query") or ""
        self.log[-1].document = query
        self.log[-1].variables = dict(body.get("variables") or {})
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            self.invalid_documents.append(f"{exc.message}\n{query}")
            return {"errors": [{"message": exc.message}]}
        problems = validate(schema, document)
        operation = next((d for d in document.definitions if hasattr(d, "operation")), None)
        kind = operation.operation if operation is not None else OperationType.QUERY
        name = operation.name.value if operation is not None and operation.name else ""
        self.log[-1].operation = kind.value
        self.log[-1].name = name
        if problems:
            self.invalid_documents.append("; ".join(p.message for p in problems) + "\n" + query)
            return {"errors": [{"message": p.message} for p in problems]}
        root = Resolvers(self.instance, admin).root(kind)
        with self._lock:  # the document is parsed and validated above: execute it only
            result = execute_sync(
                schema,
                document,
                root_value=root,
                variable_values=body.get("variables"),
                operation_name=body.get("operationName"),
            )
        if result.errors:
            for error in result.errors:
                if error.message != NOT_ALLOWED and not error.path:
                    self.invalid_documents.append(f"{error.message}\n{query}")
        return result.formatted


class Resolvers:
    """Root values for one GraphQL request, for an admin or a plain user."""

    def __init__(self, instance: Instance, admin: bool) -> None:
        self.gl = instance
        self.admin = admin

    def root(self, kind: OperationType) -> dict[str, Any]:
        if kind == OperationType.MUTATION:
            return {
                "aiSelfHostedModelCreate": self.create_model,
                "aiSelfHostedModelUpdate": self.update_model,
                "aiSelfHostedModelDelete": self.delete_model,
                "aiSelfHostedModelConnectionCheck": self.check_connection,
                "aiFeatureSettingUpdate": self.update_features,
                "duoSettingsUpdate": self.update_duo_settings,
                "userAddOnAssignmentCreate": self.assign_seat,
                "gitlabSubscriptionActivate": self.activate_subscription,
            }
        gl = self.gl
        return {
            "metadata": {"version": gl.version, "enterprise": True, "revision": "0123abcd"},
            "duoSettings": (lambda info: dict(gl.duo, updatedAt="2026-11-22T12:00:00Z"))
            if self.admin
            else None,
            "aiSelfHostedModels": self.list_models,
            "aiFeatureSettings": self.list_features,
            "addOnPurchases": (lambda info, **_: [gl.purchase_view()])
            if gl.duo_enterprise_seats is not None
            else (lambda info, **_: []),
            "user": self.user,
            "selfManagedAddOnEligibleUsers": self.eligible_users,
            "currentLicense": self.current_license,
        }

    # ------------------------------------------------------------ queries

    def _can_manage(self) -> bool:
        return self.admin and self.gl.duo_enterprise_seats is not None

    def list_models(self, info: Any, **args: Any) -> dict[str, Any] | None:
        if not self._can_manage():
            return None
        models = list(self.gl.models.values())
        if args.get("id"):
            models = [m for m in models if MODEL_GID.format(m.id) == args["id"]]
        nodes = [self.gl.model_view(m) for m in models]
        return {
            "nodes": nodes,
            "edges": [{"cursor": str(i), "node": n} for i, n in enumerate(nodes)],
            "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "endCursor": None},
        }

    def list_features(self, info: Any, **_: Any) -> dict[str, Any] | None:
        if not self._can_manage():
            return None
        nodes = [self.gl.feature_view(f) for f in FEATURES]
        return {"nodes": nodes, "pageInfo": {"hasNextPage": False, "hasPreviousPage": False}}

    def current_license(self, info: Any) -> dict[str, Any] | None:
        if not self.admin:  # CurrentLicenseResolver: authorize :read_licenses
            raise GraphQLError(NOT_ALLOWED)
        return self.gl.license_view()

    def user(self, info: Any, username: str | None = None, **_: Any) -> dict[str, Any] | None:
        user = self.gl.users.get(username or "")
        if user is None:
            return None
        return {"id": USER_GID.format(user.id), "username": user.username, "name": user.username}

    def eligible_users(self, info: Any, **args: Any) -> dict[str, Any] | None:
        if not self.admin:
            return None
        search = args.get("search") or ""
        users = [u for u in self.gl.users.values() if search in u.username]
        nodes = [self.gl.add_on_user_view(u) for u in users]
        return {"nodes": nodes, "pageInfo": {"hasNextPage": False, "hasPreviousPage": False}}

    # ------------------------------------------------------------ mutations

    def _authorize(self) -> None:
        if not self._can_manage():
            raise GraphQLError(NOT_ALLOWED)

    def create_model(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._authorize()
        values = _model_input(input)
        errors = self.gl.mutation_errors.pop("aiSelfHostedModelCreate", None)
        errors = errors or self.gl.model_errors(values, None)
        if errors:
            return {"selfHostedModel": None, "errors": errors}
        model = Model(id=self.gl.next_model_id, **values)
        self.gl.next_model_id += 1
        self.gl.models[model.id] = model
        return {"selfHostedModel": self.gl.model_view(model), "errors": []}

    def update_model(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._authorize()
        model = self.gl.find_model(input["id"])
        if model is None:
            raise GraphQLError(NOT_ALLOWED)
        values = _model_input(input)
        # Arguments left out are left unchanged (the mutation updates what it is given).
        for argument, attribute in UPDATE_OPTIONAL.items():
            if argument not in input:
                values[attribute] = getattr(model, attribute)
        errors = self.gl.model_errors(values, model.id)
        if errors:
            return {"selfHostedModel": None, "errors": errors}
        for key, value in values.items():
            setattr(model, key, value)
        return {"selfHostedModel": self.gl.model_view(model), "errors": []}

    def check_connection(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        """Validates like a create, then reports the (stand-in) model server as reachable."""
        self._authorize()
        values = _model_input(input)
        errors = self.gl.model_errors(values, own_id=-1)
        errors = [e for e in errors if e != "Name has already been taken"]
        if errors:
            return {"result": None, "errors": errors}
        result = {
            "name": "self_hosted_model_connection",
            "success": True,
            "message": f"Successfully connected to the self-hosted model {values['name']}",
            "errors": [],
            "details": {},
        }
        return {"result": result, "errors": []}

    def delete_model(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._authorize()
        model = self.gl.find_model(input["id"])
        if model is None:
            return {"errors": ["Self-hosted model not found"]}
        del self.gl.models[model.id]
        for feature, saved in list(self.gl.features.items()):
            if saved["model_id"] == model.id:  # ON DELETE CASCADE
                del self.gl.features[feature]
        return {"errors": []}

    def update_features(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._authorize()
        batch = "features" in input
        features = [f.lower() for f in (input["features"] if batch else [input["feature"]])]
        if not features:
            return {"aiFeatureSettings": [], "errors": ["At least one feature is required"]}
        provider = input["provider"].lower()
        model = None
        errors = []
        if provider == "self_hosted":
            model = self.gl.find_model(input.get("aiSelfHostedModelId") or "")
            if model is None:
                errors.append("Self hosted model can't be blank")
        for feature in features:
            if feature not in FEATURES:
                errors.append(f"Feature {feature} is not allowed")
            elif model and model.model not in FEATURES[feature]:
                errors.append(
                    f"{model.model.capitalize()} is incompatible with the {feature} feature"
                )
        if not errors:
            for feature in features:
                self.gl.features[feature] = {
                    "provider": provider,
                    "model_id": model.id if model else None,
                }
        views = [self.gl.feature_view(f) for f in features if f in FEATURES]
        if batch:
            return {"aiFeatureSettings": [] if errors else views, "errors": errors}
        return {"aiFeatureSetting": None if errors else views[0], "errors": errors}

    def update_duo_settings(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._authorize()
        errors = []
        values = dict(input)
        values.pop("clientMutationId", None)
        if values.get("aiGatewayUrl"):
            values["aiGatewayUrl"] = values["aiGatewayUrl"].rstrip("/")
            errors += self.gl.gateway_url_errors(values["aiGatewayUrl"])
        timeout = values.get("aiGatewayTimeoutSeconds")
        if timeout is not None and not 60 <= timeout <= 600:
            errors.append("Ai gateway timeout seconds must be between 60 and 600")
        if values.get("duoAgentPlatformServiceUrl"):
            values["duoAgentPlatformServiceUrl"] = values["duoAgentPlatformServiceUrl"].rstrip("/")
        if not errors:
            self.gl.duo.update(values)
        return {
            "duoSettings": dict(self.gl.duo, updatedAt="2026-11-22T12:00:00Z"),
            "errors": errors,
        }

    def activate_subscription(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if not self.admin:  # authorize :update_gitlab_subscription (admins)
            raise GraphQLError(NOT_ALLOWED)
        errors = self.gl.mutation_errors.pop("gitlabSubscriptionActivate", None)
        errors = errors or self.gl.activate(input["activationCode"])
        return {"license": None if errors else self.gl.license_view(), "errors": errors}

    def assign_seat(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if not self.admin or self.gl.duo_enterprise_seats is None:
            raise GraphQLError(NOT_ALLOWED)
        if input["addOnPurchaseId"] != PURCHASE_GID.format(1):
            raise GraphQLError(NOT_ALLOWED)
        user = next(
            (u for u in self.gl.users.values() if USER_GID.format(u.id) == input["userId"]), None
        )
        if user is None:
            raise GraphQLError(NOT_ALLOWED)
        errors = []
        if user.id not in self.gl.seats:
            if len(self.gl.seats) >= (self.gl.duo_enterprise_seats or 0):
                errors.append("NO_SEATS_AVAILABLE")
            else:
                self.gl.seats.add(user.id)
        return {
            "addOnPurchase": self.gl.purchase_view(),
            "user": self.gl.add_on_user_view(user),
            "errors": errors,
        }


# Optional update arguments -> Model attributes.
UPDATE_OPTIONAL = {"apiToken": "api_token", "endpoint": "endpoint", "identifier": "identifier"}


def _model_input(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": data["name"],
        "model": data["model"].lower(),
        "endpoint": data.get("endpoint"),
        "identifier": data.get("identifier") or "",
        "api_token": data.get("apiToken"),
        # Before 19.x the input has no provider: every model is an API model there.
        "provider": data.get("provider") or "API",
    }


def batched_background_migrations(
    double: GitLabDouble, raw_path: str, admin: bool
) -> tuple[int, Any]:
    """GET /api/v4/admin/batched_background_migrations (doc/api/admin/
    batched_background_migrations.md): administrators only; `database` (default `main`) must
    be one of the instance's databases; the last 20 of that database, newest first, each with
    id, job_class_name, table_name, column_name, status (paused, active, finished, failed,
    finalizing, finalized), progress, created_at and estimated_time_remaining. Each listing
    counts down `migrations_finish_after`; at zero the active ones finish (progress 100)."""
    if not admin:
        return 403, {"message": "403 Forbidden"}
    query = dict(parse_qsl(urlsplit(raw_path).query))
    database = query.get("database", "main")
    if database not in double.migrations:
        return 400, {"error": "database does not have a valid value"}
    with double._lock:
        if double.migrations_finish_after is not None:
            double.migrations_finish_after -= 1
            if double.migrations_finish_after <= 0:
                double.migrations_finish_after = None
                for items in double.migrations.values():
                    for item in items:
                        if item["status"] == "active":
                            item.update(status="finished", progress=100.0)
                            item["estimated_time_remaining"] = None
        listed = sorted(double.migrations[database], key=lambda m: m["created_at"], reverse=True)
    return 200, listed[:20]


def migration(
    id: int, status: str, job: str = "BackfillExample", progress: float = 50.0
) -> dict[str, Any]:
    """A batched background migration as GitLab's API shows it."""
    return {
        "id": id,
        "job_class_name": job,
        "table_name": "events",
        "column_name": "id",
        "status": status,
        "progress": progress,
        "created_at": f"2026-01-{id:02d}T10:00:00.000Z",
        "estimated_time_remaining": "1 minute" if status == "active" else None,
    }


def code_completion(double: GitLabDouble, body: dict[str, Any], admin: bool) -> tuple[int, Any]:
    """POST /api/v4/code_suggestions/completions as GitLab answers it (see the header)."""
    current = body.get("current_file")
    missing = [
        f"current_file[{key}] is missing"
        for key in ("file_name", "content_above_cursor")
        if not isinstance(current, dict) or key not in current
    ]
    if missing:
        return 400, {"error": ", ".join(missing)}
    gl = double.instance
    user = gl.users["root" if admin else "alice"]
    setting = gl.features.get("code_completions", {})
    model = gl.models.get(setting.get("model_id")) if setting.get("model_id") else None
    if user.id not in gl.seats or model is None or not gl.duo.get("aiGatewayUrl"):
        return 401, {"message": "401 Unauthorized"}
    choice = {"text": double.completion_text, "index": 0, "finish_reason": "length"}
    return 200, {
        "id": "id",
        "model": {"engine": "custom_openai", "name": model.identifier, "lang": "python"},
        "object": "text_completion",
        "created": 1763812800,
        "choices": [choice],
    }


# ---------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the double keeps its own log

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        return self.headers.get("PRIVATE-TOKEN")

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or b"{}")  # type: ignore[no-any-return]
        return dict(parse_qsl(raw.decode()))

    def _handle(self, method: str) -> None:
        double = self.server.double
        path = urlsplit(self.path).path
        double.log.append(Logged(method, path, "graphql" if path == "/api/graphql" else "", path))
        body = self._body() if method in ("POST", "PUT") else {}
        if double.fail_next:
            self._send(double.fail_next.pop(0), {"message": "502 Bad Gateway"})
            return
        token = self._token()
        if token not in double.tokens:
            if path == "/api/graphql":
                self._send(401, {"errors": [{"message": "Invalid token"}]})
            else:
                self._send(401, {"message": "401 Unauthorized"})
            return
        admin = double.tokens[token]
        if path == "/api/graphql" and method == "POST":
            self._send(200, double.graphql(body, admin))
        elif path == "/api/v4/version" and method == "GET":
            self._send(200, {"version": double.instance.version, "revision": "0123abcd"})
        elif path == "/api/v4/admin/batched_background_migrations" and method == "GET":
            self._send(*batched_background_migrations(double, self.path, admin))
        elif path == "/api/v4/application/settings":
            if not admin:
                self._send(403, {"message": "403 Forbidden"})
            elif method == "GET":
                self._send(200, double.instance.settings_view())
            elif method == "PUT":
                errors = double.instance.update_settings(body)
                if errors:
                    double.invalid_documents.append("; ".join(errors))
                    self._send(400, {"message": errors})
                else:
                    self._send(200, double.instance.settings_view())
            else:
                self._send(405, {"message": "405 Method Not Allowed"})
        elif path == "/api/v4/code_suggestions/completions" and method == "POST":
            status, answer = code_completion(double, body, admin)
            if status == 200 and double.forward_to_gateway:
                self._forward_completion(double, body, admin)
                return
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("X-GitLab-Error-Origin", "monolith")
            self.end_headers()
            self.wfile.write(data)
        else:
            self._send(404, {"message": "404 Not Found"})

    def _forward_completion(self, double: GitLabDouble, body: dict[str, Any], admin: bool) -> None:
        gl = double.instance
        model = gl.models[gl.features["code_completions"]["model_id"]]
        user = gl.users["root" if admin else "alice"]
        answer = gateway_client.forward(gl.duo["aiGatewayUrl"], double.url, user.id, model, body)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type or "application/json")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        for chunk in answer.chunks:
            self.wfile.write(chunk)
            self.wfile.flush()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, double: GitLabDouble) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.double = double


@contextmanager
def gitlab_double(
    version: str = "18.9.0-ee", tls_dir: Path | None = None
) -> Iterator[GitLabDouble]:
    """Start the double on a free loopback port; stops it on exit.

    With `tls_dir`, it serves HTTPS with a certificate from a private CA whose
    certificate is written to `tls_dir / "ca.crt"`.
    """
    double = GitLabDouble(version)
    schema_for(version)  # fail early if the reference schema is missing
    server = _Server(double)
    scheme = "http"
    if tls_dir is not None:
        _, cert, key = make_certificates(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    double.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
