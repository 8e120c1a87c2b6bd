"""What GitLab holds, read with the queries `duoctl configure` uses (gitlab_api: the probe,
then the Duo state): version, gateway URL, self-hosted models, feature mapping, seats."""

from __future__ import annotations

from duoctl.gitlab_api import DUO_ENTERPRISE, GitLabClient, GitLabError
from duoctl.status.model import FeatureMapping, GitLabModel, GitLabView, Seats

UNASSIGNED = "unassigned"  # a feature GitLab has no mapping for


def gitlab_view(url: str, token: str | None, ca_file: str | None, timeout: float) -> GitLabView:
    """GitLab's view; never raises: an unreachable GitLab is down, with the reason."""
    if not token:
        return GitLabView(
            state="unknown",
            url=url,
            reason="no automation token: pass --token-file (the deploy writes "
            "secrets/gitlab_admin_token in the deployment folder)",
        )
    client = GitLabClient(url, token, ca_file, timeout=timeout, max_retries=0)
    try:
        caps = client.probe()
        purchase = caps.purchase(DUO_ENTERPRISE)
        seats = (
            Seats(purchased=purchase.purchased, assigned=purchase.assigned) if purchase else None
        )
        try:
            state = client.state(caps, {}, [])
        except GitLabError as exc:  # answered, but holds no Duo configuration it shows us
            return GitLabView(
                state="up", url=url, version=caps.version, seats=seats, reason=str(exc)
            )
    except GitLabError as exc:
        text = str(exc)
        down = text.startswith(("cannot reach", "TLS verification failed"))
        return GitLabView(state="down" if down else "unknown", url=url, reason=text)
    except Exception as exc:  # any failure is a reason on the screen
        return GitLabView(state="down", url=url, reason=f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return GitLabView(
        state="up",
        url=url,
        version=caps.version,
        gateway_url=state.duo_settings.get("aiGatewayUrl") or None,
        models=[
            GitLabModel(name=m.name, family=m.family, identifier=m.identifier, endpoint=m.endpoint)
            for m in state.models
        ],
        features=[
            FeatureMapping(feature=f.feature, provider=f.provider, model=f.model_name)
            for f in sorted(state.features.values(), key=lambda f: f.feature)
            if f.provider != UNASSIGNED
        ],
        seats=seats,
    )
