"""Container registry test double (tag list and token auth): see server.py."""

from .server import GATEWAY_REPOSITORY, GATEWAY_TAGS, RegistryDouble, registry_double

__all__ = ["GATEWAY_REPOSITORY", "GATEWAY_TAGS", "RegistryDouble", "registry_double"]
