"""Stand-in for the `vllm` distribution (TEST DOUBLE): see the `standin` module."""

__version__ = "0.0.0"  # replaced by the wheel builder
