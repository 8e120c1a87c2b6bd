"""`duoctl bench`: a deployment's folder in, a saved and printed run out.

The user's path goes to the deployment's GitLab URL with its admin token (and its private
CA, when it has one). The model is reached through an SSH tunnel to the model server, via
the GitLab host, with the deployment's key and pinned host keys; its API key is the
deployment's `secrets/vllm_api_key` when it serves with vLLM. Nothing else is contacted.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from duoctl.bench import chart, compare, report, results
from duoctl.bench.load import Progress, Ramp
from duoctl.bench.paths import GitLabPath, ModelPath, PathName
from duoctl.bench.progress import ProgressLine
from duoctl.bench.recommend import ServingFacts
from duoctl.bench.results import BenchRun
from duoctl.bench.run import Target, assemble, run_targets
from duoctl.deployment import Deployment
from duoctl.errors import EXIT_FAILED, EXIT_OK, DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.token import read_token_file

# A code completion must show while the developer pauses: GitLab's planning guidance scales
# the gateway at 500 ms of latency, and a suggestion later than about 1.5 s is typed over.
# 1.5 s at p95 keeps 19 in 20 completions within that pause.
DEFAULT_TARGET_P95 = 1.5
PATHS: tuple[PathName, ...] = ("gitlab", "model")
VLLM_API_KEY = "vllm_api_key"


@dataclass(frozen=True)
class BenchOptions:
    name: str | None = None
    deploy_dir: Path = Path(".deploy")
    paths: tuple[PathName, ...] = PATHS
    ramp: Ramp = field(default_factory=Ramp)
    target_p95: float = DEFAULT_TARGET_P95
    model: str | None = None  # the model's name on its server; None: the first it lists
    ssh_key: str | None = None
    json: bool = False
    compare: tuple[str, str] | None = None
    # GitLab at another URL than the deployment's (behind a proxy), with its CA file.
    gitlab_url: str | None = None
    ca_file: str | None = None


def parse_levels(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4): positive, rising; DuoctlError naming the bad part."""
    fix = "pass rising positive whole numbers separated by commas, e.g. --levels 1,2,4,8"
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise DuoctlError(f"--levels {text!r} is not a list of whole numbers", fix) from None
    if not levels or any(n < 1 or n > 1024 for n in levels):
        raise DuoctlError(f"--levels {text!r}: each level must be between 1 and 1024", fix)
    if list(levels) != sorted(set(levels)):
        raise DuoctlError(f"--levels {text!r} must rise, each level once", fix)
    return levels


def check(options: BenchOptions) -> None:
    ramp = options.ramp
    for what, value in (
        ("--target-p95", options.target_p95),
        ("--level-seconds", ramp.level_seconds),
        ("--timeout", ramp.timeout),
    ):
        if not value > 0:
            raise DuoctlError(f"{what} {value:g} must be more than 0 seconds", f"pass {what} 2")
    if ramp.requests is not None and ramp.requests < 1:
        raise DuoctlError(f"--requests {ramp.requests} must be at least 1", "pass --requests 50")
    if options.gitlab_url is not None and not options.gitlab_url.startswith("https://"):
        raise DuoctlError(
            f"--gitlab-url {options.gitlab_url!r} is not an https:// URL: the bench sends the "
            "deployment's admin token there",
            "give GitLab's https:// URL",
        )
    if options.ca_file is not None and not Path(options.ca_file).is_file():
        raise DuoctlError(
            f"--ca-file {options.ca_file} is not a readable file", "give the CA certificate's path"
        )


def resolve_folder(deploy_dir: Path, name: str | None) -> DeploymentFolder:
    """The named deployment, or the only one in `deploy_dir` that has an inventory."""
    if name:
        return DeploymentFolder.of(deploy_dir, name, Path.cwd())
    found = [f.parent.name for f in deploy_dir.glob("*/inventory.yml")]
    if len(found) != 1:
        which = ", ".join(sorted(found)) or "none"
        raise DuoctlError(
            f"{deploy_dir} holds {len(found)} deployments with an inventory ({which})",
            "name the one to bench with --name",
        )
    return DeploymentFolder.of(deploy_dir, found[0], Path.cwd())


def serving_facts(folder: DeploymentFolder, deployment: Deployment) -> ServingFacts:
    """The serving concurrency, GPU and gateway timeout, as far as the folder tells."""
    from duoctl import serving
    from duoctl.settings import DeploySettings, load_saved

    parallel: int | None = None
    gpu: str | None = None
    with contextlib.suppress(Exception):  # own hosts have no settings: advice without them
        settings = DeploySettings.model_validate(load_saved(folder.settings_file))
        preset = settings.preset()
        if preset is not None:
            parallel = preset.max_num_seqs
            gpu = f"{preset.gpu_count} x {preset.gpu}"
        else:
            machine = settings.machine_types()["ollama"]
            parallel = serving.ollama_role_vars(settings.cloud, machine).get("ollama_num_parallel")
            vm = serving.gpu_vm(settings.cloud, machine)
            gpu = f"{vm.gpu_count} x {vm.gpu}" if vm else None
    timeout: int | None = None
    with contextlib.suppress(Exception):
        duo = yaml.safe_load(folder.duo_config.read_text(encoding="utf-8"))
        timeout = int(duo["gateway"]["timeout_seconds"])
    return ServingFacts(deployment.serving, parallel, gpu, timeout)


def private_key(folder: DeploymentFolder, given: str | None) -> str | None:
    if given:
        return given
    from duoctl.settings import load_saved, private_key_of

    with contextlib.suppress(Exception):
        return private_key_of(str(load_saved(folder.settings_file)["ssh_public_key_file"]))
    return None


def code_completion_model(folder: DeploymentFolder) -> list[str]:
    """The names the model GitLab uses for code completions may have on its server, from
    duo.yml: its identifier with and without the provider prefix (custom_openai/...)."""
    with contextlib.suppress(Exception):
        duo = yaml.safe_load(folder.duo_config.read_text(encoding="utf-8"))
        chosen = duo["features"]["code_completions"]
        model = next(m for m in duo["models"] if m["name"] == chosen)
        identifier = str(model["identifier"])
        return [identifier, identifier.split("/", 1)[-1]]
    return []


def model_name(
    base_url: str, api_key: str | None, timeout: float, preferred: Sequence[str] = ()
) -> str:
    """The model to bench among those the server lists at /v1/models: the first of
    `preferred` it serves, else the first it lists."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=base_url, trust_env=False, timeout=timeout) as client:
            answer = client.get("/v1/models", headers=headers)
            answer.raise_for_status()
            served = [str(item["id"]) for item in answer.json()["data"]]
            return next((name for name in preferred if name in served), served[0])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DuoctlError(
            f"the model server did not list its models at /v1/models ({exc})",
            "check it with duoctl verify, or name the model with --model",
            exit_code=EXIT_FAILED,
        ) from None


@contextlib.contextmanager
def model_address(
    folder: DeploymentFolder, deployment: Deployment, ssh_key: str | None
) -> Iterator[str]:
    """The model server's endpoint as a local address, through the SSH tunnel."""
    from duoctl.tunnel import forward

    with forward(
        deployment,
        deployment.model,
        deployment.ports.ollama_port,
        key_file=private_key(folder, ssh_key),
        known_hosts=folder.known_hosts,
    ) as address:
        yield address


def bench_deployment(
    folder: DeploymentFolder,
    options: BenchOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> tuple[BenchRun, Path]:
    """Bench the deployment in `folder` (both paths, the default ramp unless `options` say
    otherwise), save the run in <folder>/bench/<timestamp>/ with its chart; the run and
    that folder. DuoctlError when the deployment's files do not allow it."""
    options = options or BenchOptions()
    check(options)
    deployment = Deployment.from_inventory(folder.inventory)
    facts = serving_facts(folder, deployment)
    started_at = results.timestamp()
    targets: list[Target] = []
    verify: bool | str = str(folder.ca_file) if folder.ca_file.is_file() else True
    if options.ca_file:
        verify = options.ca_file
    if "gitlab" in options.paths:
        token = read_token_file(folder.admin_token_file)
        gitlab_url = options.gitlab_url or deployment.gitlab_url
        targets.append(Target(GitLabPath(token), gitlab_url, verify=verify))
    model: str | None = options.model
    with contextlib.ExitStack() as stack:
        if "model" in options.paths:
            address = stack.enter_context(model_address(folder, deployment, options.ssh_key))
            base = f"http://{address}"
            key_file = folder.secrets_dir / VLLM_API_KEY
            key = read_token_file(key_file) if deployment.serving == "vllm" else None
            preferred = code_completion_model(folder)
            model = model or model_name(base, key, options.ramp.timeout, preferred)
            path = ModelPath(model, key)
            targets.append(Target(path, base, url=deployment.model_endpoint))
        paths, samples = run_targets(targets, options.ramp, options.target_p95, progress=progress)
    run = assemble(folder.name, facts, model, options.ramp, paths, started_at)
    where = results.save(run, samples, results.run_folder(folder.root / "bench", started_at))
    chart.draw(run, where / results.CHART)
    return run, where


def _run_folder(folder: DeploymentFolder | None, given: str) -> Path:
    path = Path(given)
    if path.exists() or folder is None:
        return path
    return folder.root / "bench" / given


def run_compare(options: BenchOptions) -> int:
    assert options.compare is not None
    folder: DeploymentFolder | None = None
    if not all(Path(p).exists() for p in options.compare):
        folder = resolve_folder(options.deploy_dir, options.name)
    before, after = (results.load_run(_run_folder(folder, p)) for p in options.compare)
    comparisons = compare.compare(before, after)
    if options.json:
        print(json.dumps(compare.to_dict(before, after, comparisons), indent=2))
    else:
        print(compare.render(before, after, comparisons), end="")
    return EXIT_OK


def run(options: BenchOptions) -> int:
    """The command: compare two saved runs, or bench the deployment and print the run."""
    if options.compare:
        return run_compare(options)
    check(options)
    folder = resolve_folder(options.deploy_dir, options.name)
    line = ProgressLine()
    try:
        bench, where = bench_deployment(folder, options, progress=line)
    except KeyboardInterrupt:
        if line.tty:  # end the progress line before cli prints "interrupted"
            line.stream.write("\n")
        raise
    if options.json:
        print(results.dump(bench), end="")
    else:
        print(report.render(bench), end="")
        print(f"saved in {where} (results.json, samples.jsonl, {results.CHART})")
    dead = [p.path for p in bench.paths if not any(level.ok for level in p.levels)]
    if dead:
        print(f"error: no request succeeded on: {', '.join(dead)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
