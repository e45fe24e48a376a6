"""energybench: energy and latency of local LLM inference."""

__version__ = "0.1.0"
