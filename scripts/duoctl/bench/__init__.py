"""duoctl bench: how many developers a deployed stack serves, measured.

Two paths, each over a ramp of concurrency levels (default 1, 2, 4, 8, 16, 32), each level
bounded by a request count and a time limit:

- the user's path: code completions through GitLab's API with the deployment's admin token;
- the model alone: its OpenAI-compatible streaming completions, through an SSH tunnel via
  the GitLab host (the model server listens on its private address only).

Modules: `prompts/` (the code sent, package data), `paths` (the two APIs' requests and
answers), `samples` (one request's outcome, error kinds), `load` (the asyncio engine),
`stats` (percentiles, knee, developers), `results` (the JSON schema, saving), `report`
(tables), `chart` (PNG), `compare` (two saved runs), `recommend` (advice, never applied),
`run` (engine over plain base URLs) and `command` (the deployment's folder, tunnel and output).

For a caller with a deployment folder: `bench_deployment(folder)` runs both paths with the
default ramp, saves the run and returns it with its folder.
"""

from __future__ import annotations

from duoctl.bench.command import BenchOptions, bench_deployment, run

__all__ = ["BenchOptions", "bench_deployment", "run"]
