"""GitLab's required upgrade stops, as data.

Source: GitLab's "Plan your upgrade path" page (doc/update/upgrade_paths.md,
https://docs.gitlab.com/update/upgrade_paths/), sections "Required GitLab 15/16/17/18 upgrade
stops", as read in 2026. Replace the whole list with `duoctl upgrade --upgrade-stops FILE`
(the same shape in JSON) when GitLab publishes new stops.

Each stop is the version the page names. `latest_patch` stops are to be reached at the newest
patch release of their minor ("Upgrade to the latest GitLab X.Y patch release"; for GitLab 18
the page names only X.Y); the patch given is the least one. `condition` marks stops the page
requires only for some instances; the planner skips them unless asked for every stop.
From GitLab 17.5 the page states the rule: stops at x.2, x.5, x.8 and x.11. Majors after the
last one listed follow that rule, one major at most (`rule` and `horizon_major`).
"""

from __future__ import annotations

from typing import Any

SOURCE = "https://docs.gitlab.com/update/upgrade_paths/"

STOPS: dict[str, Any] = {
    "source": SOURCE,
    "rule": {"from": "17.5", "minors": [2, 5, 8, 11]},
    "stops": [
        {"version": "15.0.5"},
        {"version": "15.1.6", "condition": "instances with multiple web nodes"},
        {"version": "15.4.6"},
        {"version": "15.11.13"},
        {
            "version": "16.0.10",
            "condition": "instances with lots of users or large pipeline variables history",
        },
        {"version": "16.1.8", "condition": "instances with NPM packages in their package registry"},
        {"version": "16.2.11", "condition": "instances with large pipeline variables history"},
        {"version": "16.3.9"},
        {"version": "16.7.10"},
        {"version": "16.11.10"},
        {"version": "17.1.8", "condition": "instances with large ci_pipeline_messages tables"},
        {"version": "17.3.7", "latest_patch": True},
        {"version": "17.5.5", "latest_patch": True},
        {"version": "17.8.7", "latest_patch": True},
        {"version": "17.11.7", "latest_patch": True},
        {"version": "18.2.0", "latest_patch": True},
        {"version": "18.5.0", "latest_patch": True},
        {"version": "18.8.0", "latest_patch": True},
        {"version": "18.11.0", "latest_patch": True},
    ],
}
