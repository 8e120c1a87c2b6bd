"""GitLab API test double: see server.py for what it stands in for."""

from .server import ADMIN_TOKEN, USER_TOKEN, GitLabDouble, gitlab_double

__all__ = ["ADMIN_TOKEN", "USER_TOKEN", "GitLabDouble", "gitlab_double"]
