"""The upgrade planner: GitLab's required stops in, the hops out, refusals named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from duoctl.errors import EXIT_BAD_INPUT, EXIT_OK, DuoctlError
from duoctl.upgrade import planner
from duoctl.upgrade.planner import AlreadyCurrent, Version, load_stops, plan
from duoctl.upgrade.required_stops import SOURCE, STOPS


def v(text: str) -> Version:
    return Version.parse(text)


def labels(current: str, target: str, **kwargs: bool) -> list[str]:
    return [hop.label for hop in plan(v(current), v(target), **kwargs).hops]


def test_the_builtin_list_is_the_documented_one() -> None:
    stops = load_stops(None)
    assert stops.source == SOURCE
    listed = {str(s.version): s for s in stops.stops}
    # Unconditional stops exactly as GitLab's upgrade paths page gives them.
    for version in ("15.0.5", "15.4.6", "15.11.13", "16.3.9", "16.7.10", "16.11.10"):
        assert not listed[version].condition and not listed[version].latest_patch
    for version in ("17.3.7", "17.5.5", "17.8.7", "17.11.7"):
        assert listed[version].latest_patch
    for version in ("15.1.6", "16.0.10", "16.1.8", "16.2.11", "17.1.8"):
        assert listed[version].condition
    assert [s for s in listed if s.startswith("18.")] == ["18.2.0", "18.5.0", "18.8.0", "18.11.0"]
    assert stops.rule_minors == (2, 5, 8, 11)
    assert stops.horizon_major == 19


def test_from_17_to_18_through_every_stop() -> None:
    assert labels("16.11.10", "18.3.1") == [
        "17.3.x",
        "17.5.x",
        "17.8.x",
        "17.11.x",
        "18.2.x",
        "18.3.1",
    ]


def test_from_16_early_passes_the_exact_patch_stops() -> None:
    assert labels("16.0.1", "16.11.10") == ["16.3.9", "16.7.10", "16.11.10"]


def test_conditional_stops_are_skipped_and_shown_unless_asked() -> None:
    result = plan(v("16.11.10"), v("17.2.0"))
    assert [h.label for h in result.hops] == ["17.2.0"]
    assert [str(s.version) for s in result.skipped] == ["17.1.8"]
    assert "skipped: 17.1.8 (required only for instances with large ci_pipeline_messages" in (
        result.render()
    )
    assert labels("16.11.10", "17.2.0", all_stops=True) == ["17.1.8", "17.2.0"]


def test_within_a_stop_minor_the_stop_is_the_newest_patch() -> None:
    # On 17.3.2, GitLab wants the newest 17.3 before 17.5.
    assert labels("17.3.2", "17.6.0") == ["17.3.x", "17.5.x", "17.6.0"]
    # Already past the least patch of the stop: nothing to do at 17.3.
    assert labels("17.3.8", "17.6.0") == ["17.5.x", "17.6.0"]


def test_a_target_inside_a_stop_minor_is_reached_directly() -> None:
    assert labels("18.0.0", "18.2.1") == ["18.2.1"]
    assert labels("18.2.3", "18.2.5") == ["18.2.5"]
    assert labels("18.5.1", "18.8.0") == ["18.8.0"]


def test_majors_after_the_list_follow_the_rule_one_major_at_most() -> None:
    result = plan(v("18.9.2"), v("19.4.1"))
    assert [h.label for h in result.hops] == ["18.11.x", "19.2.x", "19.4.1"]
    assert "x.2/x.5/x.8/x.11 rule" in result.hops[1].reason
    assert labels("19.4.1", "19.6.0") == ["19.5.x", "19.6.0"]
    with pytest.raises(DuoctlError) as refused:
        plan(v("19.4.1"), v("20.1.0"))
    assert refused.value.exit_code == EXIT_BAD_INPUT
    assert "past what the upgrade stops cover (GitLab 19 at most" in refused.value.message
    assert "--upgrade-stops" in refused.value.fix


def test_each_hop_moves_the_gateway_to_its_minor() -> None:
    result = plan(v("18.4.0"), v("18.6.2"))
    assert [h.gateway_tag_pattern for h in result.hops] == [
        "self-hosted-v18.5.*-ee",
        "self-hosted-v18.6.*-ee",
    ]
    text = result.render()
    assert "GitLab 18.5.x" in text and "AI gateway self-hosted-v18.6.*-ee (newest existing)" in text
    assert "newest X.Y patch" in text
    shown = result.render({(18, 5): "self-hosted-v18.5.3-ee"})
    assert "AI gateway self-hosted-v18.5.3-ee\n" in shown


def test_downgrade_is_refused() -> None:
    with pytest.raises(DuoctlError) as refused:
        plan(v("18.5.1"), v("18.4.9"))
    assert refused.value.exit_code == EXIT_BAD_INPUT
    assert "cannot be downgraded" in refused.value.message


def test_same_version_is_already_current() -> None:
    with pytest.raises(AlreadyCurrent) as same:
        plan(v("18.5.1"), v("18.5.1"))
    assert same.value.exit_code == EXIT_OK
    assert "already at 18.5.1" in same.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("18.2", "not a GitLab release version"),
        ("latest", "not a GitLab release version"),
        ("18.2.1-rc1", "not a GitLab release version"),
        ("18.12.0", "does not exist"),
    ],
)
def test_invalid_versions_are_refused(text: str, problem: str) -> None:
    with pytest.raises(DuoctlError) as bad:
        Version.parse(text, "--gitlab-version")
    assert problem in bad.value.message and text in bad.value.message
    assert bad.value.fix


def test_versions_as_gitlab_writes_them() -> None:
    assert v("v18.2.1") == v("18.2.1-ee") == v("18.2.1-ee.0") == Version(18, 2, 1)


def test_older_than_the_list_is_refused() -> None:
    with pytest.raises(DuoctlError, match="older than the upgrade stops duoctl knows"):
        plan(v("14.10.5"), v("16.0.0"))


def test_a_stops_file_replaces_the_list(tmp_path: Path) -> None:
    data = json.loads(json.dumps(STOPS))
    data["source"] = "our own reading"
    data["stops"].append({"version": "19.2.3"})  # 19 listed now: the rule covers 20
    path = tmp_path / "stops.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    stops = load_stops(path)
    assert stops.horizon_major == 20
    result = plan(v("19.0.0"), v("20.1.0"), stops)
    assert [h.label for h in result.hops] == ["19.2.3", "20.1.0"]
    assert [h.label for h in plan(v("19.2.3"), v("20.3.0"), stops).hops] == ["20.2.x", "20.3.0"]
    assert "our own reading" in result.render()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON/YAML"),
        ('{"stops": []}', "non-empty 'stops' list"),
        ('{"stops": [{"version": "18.2"}]}', "not a GitLab release version"),
        ('{"stops": [{"version": "18.2.1", "when": "x"}]}', "unknown key(s) when"),
    ],
)
def test_a_bad_stops_file_is_named(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "stops.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DuoctlError) as bad:
        load_stops(path)
    assert problem in bad.value.message and str(path) in bad.value.message
    assert bad.value.exit_code == EXIT_BAD_INPUT


def test_a_missing_stops_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DuoctlError, match="cannot read the upgrade stops file"):
        load_stops(tmp_path / "nope.json")


def test_hops_survive_the_state_file() -> None:
    hop = plan(v("18.4.0"), v("18.6.2")).hops[0]
    assert planner.Hop.from_dict(json.loads(json.dumps(hop.as_dict()))) == hop
