"""The ai_gateway role's image tasks against the registry double: the image the role pulls is
the newest existing self-hosted-vX.Y.*-ee of GitLab's X.Y, an explicit tag wins, a minor
without a gateway release fails naming the registry and the fix.

The role's tasks/image.yml runs on localhost in check mode; the pull itself (no registry
behind the double's tag list) may fail or not, the image reference is read either way."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.registry import GATEWAY_REPOSITORY, RegistryDouble, registry_double

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: The ai_gateway role's image tasks
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ai_gateway_gitlab_url: https://gitlab.example.test
    ai_gateway_bind_address: 10.0.0.1
  tasks:
    - name: Provide the image
      block:
        - name: Run tasks/image.yml
          ansible.builtin.include_role:
            name: ai_gateway
            tasks_from: image
            public: true
      rescue:
        - name: Show the failure
          ansible.builtin.debug:
            msg: "FAILED={{ ansible_failed_result.msg | default('') }}"
      always:
        - name: Show the image
          ansible.builtin.debug:
            msg: "REF={{ ai_gateway_image_ref }}"
"""


@pytest.fixture
def registry() -> Iterator[RegistryDouble]:
    with registry_double() as running:
        yield running


def run_role(tmp_path: Path, registry: RegistryDouble, **extra: str) -> str:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "ansible" / "roles"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",  # never touch a real engine
    }
    args = {"ai_gateway_image_registry_url": registry.url, **extra}
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "--check"]
    cmd += [str(playbook), "-e", f"ansible_python_interpreter={ROOT / '.venv' / 'bin' / 'python'}"]
    for key, value in args.items():
        cmd += ["-e", f"{key}={value}"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    return run.stdout + run.stderr


def ref_of(output: str) -> str:
    match = re.search(r'"msg": "REF=([^"]+)"', output)
    assert match, output
    return match[1]


def test_the_newest_existing_tag_of_the_minor(tmp_path: Path, registry: RegistryDouble) -> None:
    output = run_role(tmp_path, registry, ai_gateway_gitlab_version="18.2.1-ee.0")
    assert ref_of(output) == f"registry.gitlab.com/{GATEWAY_REPOSITORY}:self-hosted-v18.2.4-ee"
    assert registry.token_requests() == 1


def test_an_explicit_tag_wins_without_asking_the_registry(
    tmp_path: Path, registry: RegistryDouble
) -> None:
    output = run_role(
        tmp_path,
        registry,
        ai_gateway_gitlab_version="18.2.1",
        ai_gateway_image_tag="self-hosted-v18.2.1-ee",
    )
    assert ref_of(output).endswith(":self-hosted-v18.2.1-ee")
    assert registry.log == []


def test_a_minor_without_a_gateway_release_fails_with_the_fix(
    tmp_path: Path, registry: RegistryDouble
) -> None:
    output = run_role(tmp_path, registry, ai_gateway_gitlab_version="18.11.2")
    assert f"registry.gitlab.com/{GATEWAY_REPOSITORY} has no self-hosted-v18.11.*-ee tag" in output
    assert "Set ai_gateway_image_tag" in output
