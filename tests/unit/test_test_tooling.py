"""The container test tooling's own rules, without containers: the base image's name follows
its build recipe, every scenario defaults to the image the tooling maintains, the `site`
scenario's addresses stay in the test range, and cloud-init's console text has its shape."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.tooling import cloud_init, docker_env

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "ansible" / "molecule" / "site" / "molecule.yml"
TEST_RANGE = ipaddress.ip_network("10.213.0.0/16")
DEFAULT = re.compile(r"\$\{(?P<name>\w+):-(?P<default>[^}]*)\}")


def test_image_tag_is_a_hash_of_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_IMAGE", raising=False)
    tag = docker_env.recipe_tag()
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert docker_env.image_name() == f"local/debian12-systemd:{tag}"
    monkeypatch.setattr(docker_env, "BASE_PACKAGES", (*docker_env.BASE_PACKAGES, "vim"))
    assert docker_env.recipe_tag() != tag
    monkeypatch.setenv("TEST_IMAGE", "local/other:1")
    assert docker_env.image_name() == "local/other:1"


def test_the_image_holds_no_host_key_and_makes_them_at_boot() -> None:
    assert "etc/ssh/ssh_host_*" in docker_env.IMAGE_REMOVE
    drop_in = docker_env.IMAGE_FILES["etc/systemd/system/ssh.service.d/host-keys.conf"][1]
    assert drop_in.splitlines()[1:3] == ["ExecStartPre=", "ExecStartPre=/usr/bin/ssh-keygen -A"]


def test_every_scenario_defaults_to_the_image_the_tooling_tags_latest() -> None:
    files = sorted((ROOT / "ansible").glob("**/molecule/*/molecule.yml"))
    assert SITE in files
    for file in files:
        defaults = {
            m["default"] for m in DEFAULT.finditer(file.read_text()) if m["name"] == "TEST_IMAGE"
        }
        assert defaults == {docker_env.LATEST_IMAGE}, file


def test_site_addresses_default_to_the_test_range_inside_their_networks() -> None:
    text = SITE.read_text()
    defaults = {m["name"]: m["default"] for m in DEFAULT.finditer(text)}
    site = {k: v for k, v in defaults.items() if k.startswith("DUO_SITE_")}
    assert set(site) == {
        "DUO_SITE_PRIVATE_SUBNET", "DUO_SITE_GITLAB_IP", "DUO_SITE_GATEWAY_IP",
        "DUO_SITE_OLLAMA_IP", "DUO_SITE_PUBLIC_SUBNET", "DUO_SITE_GITLAB_PUBLIC_IP",
    }  # fmt: skip
    private = ipaddress.ip_network(site["DUO_SITE_PRIVATE_SUBNET"])
    public = ipaddress.ip_network(site["DUO_SITE_PUBLIC_SUBNET"])
    assert private.subnet_of(TEST_RANGE) and public.subnet_of(TEST_RANGE)
    assert not private.overlaps(public)
    for name in ("DUO_SITE_GITLAB_IP", "DUO_SITE_GATEWAY_IP", "DUO_SITE_OLLAMA_IP"):
        assert ipaddress.ip_address(site[name]) in private, name
    assert ipaddress.ip_address(site["DUO_SITE_GITLAB_PUBLIC_IP"]) in public
    # each default is the same wherever the variable is used
    for match in DEFAULT.finditer(text):
        assert match["default"] == defaults[match["name"]], match.group(0)


def test_site_scenario_parses_with_its_defaults() -> None:
    config = yaml.safe_load(DEFAULT.sub(lambda m: m["default"], SITE.read_text()))
    gitlab = config["platforms"][0]
    assert [n["name"] for n in gitlab["networks"]] == ["site-duo-net", "site-duo-public"]
    host_vars = config["provisioner"]["inventory"]["host_vars"]["site-gitlab"]
    assert host_vars["public_ip"] == gitlab["networks"][1]["ipv4_address"]
    assert host_vars["private_ip"] == gitlab["networks"][0]["ipv4_address"]


def test_console_block_and_logger_prefix_have_cloud_inits_shape() -> None:
    keys = ["ssh-ed25519 AAAAC3Nza root@host", "ssh-rsa AAAAB3Nza root@host"]
    assert cloud_init.console_block(keys) == (
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        "ssh-ed25519 AAAAC3Nza root@host\n"
        "ssh-rsa AAAAB3Nza root@host\n"
        "-----END SSH HOST KEY KEYS-----\n"
    )
    prefix = cloud_init._syslog_prefix(datetime(2026, 4, 9, 22, 6, 30))
    assert prefix == "<14>Apr  9 22:06:30 ec2: "
    assert cloud_init.console_block(keys, prefix).splitlines()[0] == (
        "<14>Apr  9 22:06:30 ec2: -----BEGIN SSH HOST KEY KEYS-----"
    )
