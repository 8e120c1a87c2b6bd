"""Stand-ins for external systems that cannot be reached from the test machines."""
