"""duoctl: deploy and configure GitLab Duo Self-Hosted."""

__version__ = "0.1.0"
