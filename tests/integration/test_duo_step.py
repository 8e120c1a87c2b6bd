"""The duo step: the deployment's GitLab Duo configuration built in Python, checked by
configure's own loader, written to the deployment folder and applied in-process against the
GitLab API double (HTTPS with a private CA, as the bundle's self-signed GitLab)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from duoctl import deploy
from duoctl.config import load_config
from duoctl.deploy.state import remember
from duoctl.deployment import Deployment
from duoctl.folder import DeploymentFolder
from duoctl.pipeline import Context, Progress, StepFailed

from tests.doubles.gitlab_api import ADMIN_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.gitlab_api.instance import ACTIVATION_CODES

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.2.11",
    "gitlab_domain": "gitlab.example.com",
    "ssh_user": "ubuntu",
    "gateway_port": 15052,
    "ollama_port": 21434,
}


@pytest.fixture(params=["18.9.0-ee", "19.4.0-ee"])
def double(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GitLabDouble]:
    (tmp_path / "tls").mkdir()
    with gitlab_double(request.param, tls_dir=tmp_path / "tls") as running:
        yield running


def context(tmp_path: Path, double: GitLabDouble) -> tuple[Context, io.StringIO]:
    folder = DeploymentFolder.of(tmp_path / ".deploy", "aws", REPO)
    folder.create()
    folder.admin_token_file.write_text(ADMIN_TOKEN + "\n")
    (tmp_path / "tls" / "ca.crt").replace(folder.ca_file)  # the gitlab role's private CA
    out = io.StringIO()
    ctx = Context("aws", folder, Progress(folder.log_file, out))
    remember(ctx, Deployment.from_outputs(OUTPUTS, "aws"))
    return ctx, out


def test_configures_the_deployment_and_a_rerun_changes_nothing(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, out = context(tmp_path, double)
    deploy.DuoStep(gitlab_url=double.url).run(ctx)
    gl = double.instance
    assert gl.duo["aiGatewayUrl"] == "http://10.0.2.10:15052"
    [model] = gl.models.values()
    assert (model.endpoint, model.identifier) == (
        "http://10.0.2.11:21434/v1",
        "custom_openai/mistral:instruct",
    )
    assert gl.allowlist() == ["10.0.2.10", "10.0.2.11"]  # the gateway and the model endpoint
    # The configuration is kept in the folder, 0600, and configure's loader reads it back.
    written = ctx.paths.duo_config
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    assert load_config(written).gateway.agent_platform_url == "10.0.2.10:50052"
    deploy.DuoStep(gitlab_url=double.url).run(ctx)
    assert "no changes: GitLab already matches the configuration" in ctx.paths.log_file.read_text()
    assert ADMIN_TOKEN not in out.getvalue() + ctx.paths.log_file.read_text()


def test_gitlab_errors_fail_the_step_with_configures_message(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double)
    double.fail_next.extend([502] * 6)
    with pytest.raises(StepFailed, match=r"duoctl configure failed .*GitLab answered HTTP 502"):
        deploy.DuoStep(gitlab_url=double.url).run(ctx)


def test_activation_code_travels_by_path_only(tmp_path: Path, double: GitLabDouble) -> None:
    ctx, out = context(tmp_path, double)
    double.instance.remove_license()
    code = next(iter(ACTIVATION_CODES))
    code_file = tmp_path / "code"
    code_file.write_text(code + "\n")
    deploy.DuoStep(activation_code_file=str(code_file), gitlab_url=double.url).run(ctx)
    assert double.instance.license is not None
    saved = yaml.safe_load(ctx.paths.duo_config.read_text())
    assert saved["license"] == {"activation_code_file": str(code_file)}
    text = out.getvalue() + ctx.paths.log_file.read_text() + ctx.paths.duo_config.read_text()
    assert code not in text


def test_without_the_token_the_step_says_which_step_makes_it(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double)
    ctx.paths.admin_token_file.unlink()
    with pytest.raises(StepFailed, match=r"gitlab_admin_token is missing.*--from site"):
        deploy.DuoStep(gitlab_url=double.url).run(ctx)
