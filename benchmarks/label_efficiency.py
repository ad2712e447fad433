"""Label efficiency: our sampling policies vs random sampling and published anchors, same learner.

Every method runs the same prequential protocol (``benchmarks/prequential.py``) with the same
learner, ``streamer.models.build_model(LOGISTIC_MODEL, seed=seed)``, on every stream of the data
dir plus river's drifting generators (``benchmarks/streams.py``), at budgets 1%, 5% and 10% and
several seeds. Methods:

- ours: each row of :data:`OURS` (``Sampler(model, budget=b, seed=s, **kwargs)``), the
  :data:`DEFAULT_ROW` being the default policy, plus random sampling at the same budget;
- anchors (``benchmarks/anchors.py``): river's ``EntropySampler`` (no budget: its
  ``discount_factor`` is tuned per stream and budget so its share lands nearest the budget) and
  scikit-activeml's ``VariableUncertainty``, ``Split``, ``StreamProbabilisticAL`` and
  ``DBALStream`` with their default budget managers at budget ``b``.

Writes ``label_efficiency.json`` (machine, config, every run, the aggregated table),
``label_efficiency.md`` (one table per budget, notes on every losing cell and anchor failure) and
``label_efficiency.png`` (accuracy vs labels at 5%) to ``--out`` (``--name`` renames the three),
and prints the Markdown. Anchor runs are cached in ``label_efficiency_anchors.json`` and reused
(``--only-ours``) only under the same key: library versions, a hash of the benchmark's code and
of the stream's data; ``--rerun-anchors`` ignores the cache, ``--no-anchors`` runs our rows
without any anchor. ``--rows-from FILE`` reruns the rows a results file recorded (the
exploratory runs ``label_efficiency_<name>.json``: see the Makefile's ``bench`` target).
The sanity check (``--tutorial``, part of the default run) replays scikit-activeml's stream
tutorial (``benchmarks/skactiveml_tutorial.py``).

Usage::

    .venv/bin/python benchmarks/label_efficiency.py                 # the full run
    .venv/bin/python benchmarks/label_efficiency.py --only-ours \\
        --ours 'mine={"policy": "margin", "explore": 0.2}'         # iterate on our policies
    .venv/bin/python benchmarks/label_efficiency.py --quick --out /tmp/le
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before numpy loads: one BLAS thread per worker, the pool is the parallelism
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import queue  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

import numpy as np  # noqa: E402
import river  # noqa: E402
import skactiveml  # noqa: E402
from anchors import ANCHORS, RIVER_ENTROPY, SKACTIVEML_STRATEGIES  # noqa: E402
from label_efficiency_report import REFERENCE_SUFFIX  # noqa: E402
from machine import Start, write_result  # noqa: E402
from prequential import run  # noqa: E402
from streams import SYNTHETIC, Stream, load_streams  # noqa: E402

from streamer.core.budget import DEFAULT_WARMUP_LABELS  # noqa: E402
from streamer.data import default_data_dir  # noqa: E402
from streamer.models import DEFAULT_MODEL, LOGISTIC_MODEL, auto_members  # noqa: E402

# Our rows: name -> Sampler kwargs, passed through untouched ("model" names the row's learner;
# without it, --model). The default row is what `streamer run` does with no flags: the default
# model, policy and warm-up; every single learner of the portfolio runs alone under the same
# policy and warm-up; then what lost when the default was chosen. Add rows here or with --ours.
DEFAULTS: dict[str, Any] = {"model": DEFAULT_MODEL, "warmup": DEFAULT_WARMUP_LABELS}
OURS: dict[str, dict[str, Any]] = {
    "auto": dict(DEFAULTS),
    **{name: {**DEFAULTS, "model": spec} for name, spec in auto_members().items()},
    "auto hedge": {**DEFAULTS, "model": "auto(vote='hedge')"},
    "auto, no warm-up": {**DEFAULTS, "warmup": 0},
    "logistic, no warm-up": {"model": LOGISTIC_MODEL, "warmup": 0},  # the default before auto
}
DEFAULT_ROW = "auto"
TUTORIAL_DEFAULT_ROW = "default policy"  # the default row's Sampler settings over the tutorial's learners
RANDOM_ROW = "random"
RANDOM_KWARGS = {"policy": "random"}

BUDGETS = (0.01, 0.05, 0.10)
SEEDS = (0, 1, 2)
# 10,000 synthetic items keep the default run under ~30 min on 2 cores (measured: the slowest
# anchors, StreamProbabilisticAL and DBALStream, run at ~500-1,000 items/s at batch size 8).
SYNTHETIC_ITEMS = 10_000
BATCH_SIZE = 8
# EntropySampler's discount_factor: a coarse grid on the tuning seed, then one log-interpolated
# value per budget; the value whose share is nearest the budget on the tuning seed runs on all seeds.
# 1 .. 2^20 by factors of 2, then up to 2^40 by factors of 4: at 1% the share is still above the
# budget at 2^20 on several streams. Grid runs are cheap (one seed, every budget at once).
ENTROPY_GRID = tuple(2.0**k for k in (*range(21), *range(22, 41, 2)))
TUNING_SEED = 0
# A cached anchor run is reused only under the same fingerprint: the libraries' versions and a
# hash of this benchmark's code (an adapter or protocol change invalidates it), plus, per run,
# a hash of the stream's data (see Job.cache_key).
CODE_FILES = ("label_efficiency.py", "anchors.py", "prequential.py", "streams.py", "skactiveml_tutorial.py",
              "../streamer/prequential.py")

RESULTS = Path(__file__).resolve().parent / "results"
# Relative cost per item, for ordering jobs and the ETA (measured at batch size 8 on 2 cores:
# ~15,000 items/s for our rows, 1,000 for StreamProbabilisticAL, 660 for DBALStream).
COST = {RANDOM_ROW: 1.0, RIVER_ENTROPY: 1.0, "skactiveml.VariableUncertainty": 1.9,
        "skactiveml.Split": 2.4, "skactiveml.StreamProbabilisticAL": 15.0, "skactiveml.DBALStream": 23.0}
TUTORIAL_COST = 400_000.0  # one tutorial row over the Parzen window: ~25 s, 5,000 items one by one
TUTORIAL_DEFAULT_MODEL_COST = 16_000.0


# -- jobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run: ``method`` on ``stream`` at ``budget`` with ``seed`` (or one tutorial row)."""

    kind: str  # "ours" | "reference" | "anchor" | "tutorial-theirs" | "tutorial-ours"
    method: str
    stream: str = ""
    budget: float = 0.0
    seed: int = 0
    sampler_kwargs: dict[str, Any] | None = None
    anchor_params: dict[str, Any] = field(default_factory=dict)
    learner: str = ""

    def cache_key(self, stream: Stream, batch_size: int, model: str) -> str:
        # EntropySampler has no budget: one run serves every budget.
        budget = "any" if self.method == RIVER_ENTROPY else f"{self.budget:g}"
        params = json.dumps(self.anchor_params, sort_keys=True)
        return (f"{cache_fingerprint()}|{stream.name}|data={stream.digest}|bs={batch_size}|model={model}|"
                f"{self.method}|budget={budget}|seed={self.seed}|{params}")


_STREAMS: dict[str, Stream] = {}  # filled before the pool forks; workers read it
_SETTINGS: dict[str, Any] = {}


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    # ParzenWindowClassifier warns about zero variance on a window of identical rows.
    warnings.filterwarnings("ignore", module="skactiveml")


def execute(job: Job) -> dict[str, Any]:
    """Run one job in a worker; never raises (a failure comes back as ``error``)."""
    started = time.perf_counter()
    try:
        if job.kind == "tutorial-theirs":
            from skactiveml_tutorial import run_theirs

            result = run_theirs(job.method)
        elif job.kind == "tutorial-ours":
            from skactiveml_tutorial import run_ours

            result = run_ours(job.sampler_kwargs or {}, job.learner)
        else:
            stream = _STREAMS[job.stream]
            # a row of ours may name its own learner ("model"); the rest are Sampler arguments
            kwargs = dict(job.sampler_kwargs or {})
            model_spec = kwargs.pop("model", _SETTINGS["model"])
            result = run(stream, budget=job.budget, seed=job.seed, batch_size=_SETTINGS["batch_size"],
                         sampler_kwargs=kwargs if job.kind in ("ours", "reference") else None,
                         anchor=job.method if job.kind == "anchor" else None,
                         anchor_params=job.anchor_params, model_spec=model_spec)
    except Exception as exc:  # a failing method is reported, not hidden
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["elapsed_s"] = result.get("elapsed_s", round(time.perf_counter() - started, 3))
    return {"job": asdict(job), **result}


def reference_rows(ours: dict[str, dict[str, Any]], default_model: str) -> dict[str, dict[str, Any]]:
    """One full-label run per distinct learner of our rows: ``"<row> (all labels)"`` -> kwargs
    that ask for every item (random sampling at budget 1), named after the first row using it;
    variants of ``auto`` (another vote) get none."""
    rows: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for name, cfg in ours.items():
        spec = cfg.get("model", default_model)
        if spec not in seen and not spec.startswith("auto("):  # variants of the default: no
            seen.add(spec)
            rows[f"{name}{REFERENCE_SUFFIX}"] = {"policy": "random", "model": spec}
    return rows


def job_cost(job: Job) -> float:
    if job.kind.startswith("tutorial"):
        return TUTORIAL_COST if job.learner != LOGISTIC_MODEL else TUTORIAL_DEFAULT_MODEL_COST
    if job.kind == "reference":  # every item is learned: ~20x a 5% run for a cheap learner
        return len(_STREAMS[job.stream]) * 20.0
    return len(_STREAMS[job.stream]) * COST.get(job.method, 1.0)


class Runner:
    """Runs jobs on a pool (or inline), reports progress on stderr, and lets callers add jobs."""

    def __init__(self, jobs: int) -> None:
        self._pool = multiprocessing.get_context("fork").Pool(jobs, _init_worker) if jobs > 1 else None
        if self._pool is None:
            _init_worker()
        self._done: queue.Queue[dict[str, Any]] = queue.Queue()
        self._pending = 0
        self.total_cost = 0.0
        self.done_cost = 0.0
        self.finished = 0
        self.submitted = 0
        self.started = time.perf_counter()

    def submit(self, job: Job) -> None:
        self._pending += 1
        self.submitted += 1
        self.total_cost += job_cost(job)
        if self._pool is None:
            self._done.put(execute(job))
        else:
            self._pool.apply_async(execute, (job,), callback=self._done.put,
                                   error_callback=lambda exc, job=job: self._done.put(
                                       {"job": asdict(job), "error": repr(exc)}))

    def expect(self, cost: float) -> None:
        """Count jobs that will be submitted later in the ETA."""
        self.total_cost += cost

    def unexpect(self, cost: float) -> None:
        self.total_cost -= cost

    def results(self) -> Any:
        while self._pending:
            result = self._done.get()
            self._pending -= 1
            self.finished += 1
            self.done_cost += job_cost(Job(**result["job"]))
            self._progress(result)
            yield result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()

    def _progress(self, result: dict[str, Any]) -> None:
        job = result["job"]
        elapsed = time.perf_counter() - self.started
        eta = elapsed * max(self.total_cost - self.done_cost, 0.0) / max(self.done_cost, 1e-9)
        budget = f"{job['budget']:g}" if job["method"] != RIVER_ENTROPY else "any"
        params = "".join(f" {k}={v:g}" for k, v in job["anchor_params"].items())
        what = (f"{job['stream']} {job['method']}{params} b={budget} s={job['seed']}"
                if not job["kind"].startswith("tutorial") else f"tutorial {job['method']} {job['learner']}")
        if "error" in result:
            outcome = f"FAILED {result['error']}"
        elif "share" in result:
            outcome = f"acc {result['accuracy']:.4f} share {result['share']:.2%}"
        else:
            outcome = f"acc {result['accuracy']:.4f} queries {result['queries']}"
        print(f"[{self.finished:>4}/{self.submitted}] {what} -> {outcome} ({result['elapsed_s']:.1f}s)"
              f" | elapsed {_clock(elapsed)}, ETA {_clock(eta)}", file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


# -- the benchmark -------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every method; return the JSON document (also written with the Markdown and PNG)."""
    started = Start.now()  # the git state of the code this process has loaded
    ours, default_row = rows_of(args.rows_from) if args.rows_from else (dict(OURS), DEFAULT_ROW)
    ours.update(args.ours)
    if args.rows:  # only these of our rows (and the default's, which every verdict is about)
        unknown = sorted(set(args.rows) - set(ours))
        if unknown:
            raise SystemExit(f"--rows: no row named {', '.join(unknown)}; rows: {', '.join(ours)}")
        ours = {name: cfg for name, cfg in ours.items() if name in args.rows or name == default_row}
    if default_row not in ours:
        raise SystemExit(f"the default row {default_row!r} is missing from our rows")
    data_dir = default_data_dir()
    streams = load_streams(data_dir, args.synthetic_items, names=args.streams, max_items=args.max_items)
    _STREAMS.clear()
    _STREAMS.update({s.name: s for s in streams})
    _SETTINGS.update(batch_size=args.batch_size, model=args.model)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "label_efficiency_anchors.json"
    cache = {} if args.rerun_anchors or args.no_anchors else _load_cache(cache_path)

    runner = Runner(args.jobs)
    records: list[dict[str, Any]] = []
    tutorial_rows: dict[str, dict[str, Any]] = {"theirs": {}, "ours": {}}

    jobs: list[Job] = []
    if args.tutorial:
        from skactiveml_tutorial import LEARNERS, THEIRS

        for name in THEIRS:
            key = _tutorial_key(name)
            if key in cache:
                tutorial_rows["theirs"][name] = {**cache[key], "cached": True}
            elif not args.only_ours:
                jobs.append(Job("tutorial-theirs", name))
        # The tutorial fixes its learners (LEARNERS): our rows that differ only by learner would
        # repeat each other there, so it runs the default row's policy and random.
        policy = {k: v for k, v in ours[default_row].items() if k != "model"}
        jobs += [Job("tutorial-ours", name, sampler_kwargs=cfg, learner=learner)
                 for name, cfg in {TUTORIAL_DEFAULT_ROW: policy, RANDOM_ROW: RANDOM_KWARGS}.items()
                 for learner in LEARNERS]
    references = reference_rows(ours, args.model) if args.reference else {}
    for stream in streams:
        for seed in args.seeds:  # each learner given every label: the full-label reference
            for name, cfg in references.items():
                jobs.append(Job("reference", name, stream.name, 1.0, seed, sampler_kwargs=cfg))
        for budget in args.budgets:
            for seed in args.seeds:
                for name, cfg in {**ours, RANDOM_ROW: RANDOM_KWARGS}.items():
                    jobs.append(Job("ours", name, stream.name, budget, seed, sampler_kwargs=cfg))
                for anchor in SKACTIVEML_STRATEGIES:
                    jobs.append(Job("anchor", anchor, stream.name, budget, seed))

    entropy = EntropyTuning(args, streams, runner, cache)
    pending_anchor_jobs: list[Job] = []
    for job in sorted(jobs, key=job_cost, reverse=True):
        if job.kind == "anchor":
            key = job.cache_key(_STREAMS[job.stream], args.batch_size, args.model)
            if key in cache:
                records.append({**cache[key], "job": asdict(job), "cached": True})
                continue
            if args.only_ours:
                continue
            pending_anchor_jobs.append(job)
            continue
        runner.submit(job)
    # Cheap EntropySampler grid first: its follow-up runs depend on it.
    entropy.start()
    for job in pending_anchor_jobs:
        runner.submit(job)

    last_save = time.monotonic()
    for result in runner.results():
        job = Job(**result["job"])
        if job.kind == "tutorial-theirs":
            tutorial_rows["theirs"][job.method] = result
            if "error" not in result:
                cache[_tutorial_key(job.method)] = _strip(result)
            continue
        if job.kind == "tutorial-ours":
            tutorial_rows["ours"][f"{job.method} | {job.learner}"] = result
            continue
        if job.kind == "anchor" and "error" not in result:
            cache[job.cache_key(_STREAMS[job.stream], args.batch_size, args.model)] = _strip(result)
        if job.method == RIVER_ENTROPY:
            entropy.finished(job, result)
        else:
            records.append(result)
        if not args.only_ours and time.monotonic() - last_save > 60:
            _save_cache(cache_path, cache, started)
            last_save = time.monotonic()
    runner.close()
    if not args.only_ours:  # only anchor runs add to the cache
        _save_cache(cache_path, cache, started)
    records += entropy.records()
    elapsed = time.perf_counter() - started.clock

    from label_efficiency_report import build_document, tutorial_markdown, write_outputs

    doc = build_document(
        args=args, ours=ours, default_row=default_row, streams=streams,
        records=records, entropy=entropy.summary(), tutorial=tutorial_rows if args.tutorial else None,
        elapsed=elapsed)
    if args.tutorial_only:  # the main results stay as they are
        print(tutorial_markdown(doc))
        return doc
    doc, markdown = write_outputs(doc, out, args.name, started)
    print(markdown)
    print(f"wrote {out / args.name}.json, .md, .png ({_clock(elapsed)})", file=sys.stderr)
    return doc


def rows_of(results: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """Our rows and the default row as a results file of this benchmark recorded them."""
    try:
        doc = json.loads(results.read_text())
        return dict(doc["ours"]), doc["default_row"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"--rows-from {results}: not a label_efficiency results file ({exc!r})") from None


class EntropyTuning:
    """river's EntropySampler has no budget; find, per stream and budget, its nearest setting.

    1. the coarse :data:`ENTROPY_GRID` on the tuning seed (one run serves every budget);
    2. per budget, ``discount_factor`` log-interpolated between the two grid values whose shares
       bracket the budget, on the tuning seed;
    3. the value (grid or interpolated) whose tuning-seed share is nearest the budget, on every seed.
    """

    def __init__(self, args: argparse.Namespace, streams: list[Stream], runner: Runner,
                 cache: dict[str, Any]) -> None:
        self._args, self._streams, self._runner, self._cache = args, streams, runner, cache
        self._runs: dict[tuple[str, float, int], dict[str, Any]] = {}  # (stream, df, seed)
        self._waiting: dict[str, int] = defaultdict(int)  # stream -> runs of the current phase
        self._phase: dict[str, int] = {}
        self.chosen: dict[tuple[str, float], float] = {}  # (stream, budget) -> df

    def start(self) -> None:
        if self._args.only_ours and not self._any_cached():
            return
        for stream in self._streams:
            self._phase[stream.name] = 1
            # phases 2 and 3 come later: count them in the ETA now
            later = len(self._args.budgets) * (1 + len(self._args.seeds))
            self._runner.expect(later * len(stream) * COST[RIVER_ENTROPY])
            self._launch(stream.name, [(df, TUNING_SEED) for df in ENTROPY_GRID])

    def _any_cached(self) -> bool:
        return any(f"|{RIVER_ENTROPY}|" in key for key in self._cache)

    def _launch(self, stream: str, runs: list[tuple[float, int]]) -> None:
        todo = [(df, seed) for df, seed in dict.fromkeys(runs) if (stream, df, seed) not in self._runs]
        for df, seed in todo:
            job = Job("anchor", RIVER_ENTROPY, stream, 0.0, seed, anchor_params={"discount_factor": df})
            key = job.cache_key(_STREAMS[stream], self._args.batch_size, self._args.model)
            if key in self._cache:
                self._runs[(stream, df, seed)] = {**self._cache[key], "job": asdict(job), "cached": True}
            elif self._args.only_ours:
                self._runs[(stream, df, seed)] = {"job": asdict(job), "error": "not cached (--only-ours)"}
            else:
                self._waiting[stream] += 1
                self._runner.submit(job)
        if self._waiting[stream] == 0:
            self._advance(stream)

    def finished(self, job: Job, result: dict[str, Any]) -> None:
        self._runs[(job.stream, job.anchor_params["discount_factor"], job.seed)] = result
        self._waiting[job.stream] -= 1
        if self._waiting[job.stream] == 0:
            self._advance(job.stream)

    def _advance(self, stream: str) -> None:
        n = len(_STREAMS[stream])
        phase = self._phase.get(stream, 0)
        if phase == 1:
            self._phase[stream] = 2
            self._runner.unexpect(len(self._args.budgets) * n * COST[RIVER_ENTROPY])
            self._launch(stream, [(self._interpolate(stream, b), TUNING_SEED) for b in self._args.budgets])
        elif phase == 2:
            self._phase[stream] = 3
            self._runner.unexpect(len(self._args.budgets) * len(self._args.seeds) * n * COST[RIVER_ENTROPY])
            for budget in self._args.budgets:
                self.chosen[(stream, budget)] = self._nearest(stream, budget)
            self._launch(stream, [(self.chosen[(stream, b)], seed) for b in self._args.budgets
                                  for seed in self._args.seeds])

    def _tuning_shares(self, stream: str) -> list[tuple[float, float]]:
        return sorted((df, r["share"]) for (s, df, seed), r in self._runs.items()
                      if s == stream and seed == TUNING_SEED and "share" in r)

    def _interpolate(self, stream: str, budget: float) -> float:
        points = self._tuning_shares(stream)
        if not points:
            return ENTROPY_GRID[0]
        for (d0, s0), (d1, s1) in zip(points, points[1:], strict=False):
            if s0 >= budget >= s1 and s0 > s1 > 0:
                t = (np.log(s0) - np.log(budget)) / (np.log(s0) - np.log(s1))
                return float(round(np.exp(np.log(d0) + t * (np.log(d1) - np.log(d0))), 3))
        return min(points, key=lambda p: abs(p[1] - budget))[0]

    def _nearest(self, stream: str, budget: float) -> float:
        points = self._tuning_shares(stream)
        return min(points, key=lambda p: abs(p[1] - budget))[0] if points else ENTROPY_GRID[0]

    def records(self) -> list[dict[str, Any]]:
        """One record per (stream, budget, seed) with the chosen discount factor."""
        out = []
        for (stream, budget), df in self.chosen.items():
            for seed in self._args.seeds:
                result = self._runs.get((stream, df, seed))
                if result is None:
                    continue
                job = Job("anchor", RIVER_ENTROPY, stream, budget, seed, anchor_params={"discount_factor": df})
                out.append({**result, "job": asdict(job)})
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "grid": list(ENTROPY_GRID),
            "tuning_seed": TUNING_SEED,
            "tuning_shares": {s.name: self._tuning_shares(s.name) for s in self._streams},
            "chosen": {f"{stream}@{budget:g}": df for (stream, budget), df in self.chosen.items()},
        }


def _tutorial_key(name: str) -> str:
    return f"{cache_fingerprint()}|tutorial|{name}"


@functools.cache
def cache_fingerprint() -> str:
    """The libraries' versions and a hash of the benchmark's code, for the anchor cache's keys."""
    import sklearn

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        digest.update((here / name).read_bytes())
    return (f"river={river.__version__},skactiveml={skactiveml.__version__},sklearn={sklearn.__version__},"
            f"numpy={np.__version__},code={digest.hexdigest()[:12]}")


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("job", "cached")}


def _load_cache(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text()).get("runs", {})
    except (OSError, ValueError):
        print(f"warning: ignoring unreadable anchor cache {path}", file=sys.stderr)
        return {}


def _save_cache(path: Path, cache: dict[str, Any], started: Start) -> None:
    write_result(path, {"benchmark": "label_efficiency anchors", "fingerprint": cache_fingerprint(),
                        "runs": dict(sorted(cache.items()))}, started,
                 dump=lambda doc: json.dumps(doc, separators=(",", ":")))


# -- command line --------------------------------------------------------------------------------


def _ours_flag(text: str) -> tuple[str, dict[str, Any]]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {text!r}")
    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ours {name}: {raw!r} is not JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise argparse.ArgumentTypeError(f"--ours {name}: expected a JSON object of Sampler kwargs")
    return name, cfg


def _csv(kind: type) -> Any:
    return lambda text: [kind(v) for v in text.split(",") if v]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=_csv(float), default=list(BUDGETS), help="comma-separated")
    parser.add_argument("--seeds", type=_csv(int), default=list(SEEDS), help="comma-separated")
    parser.add_argument("--streams", type=_csv(str), default=None,
                        help=f"comma-separated names (default: every file and {', '.join(SYNTHETIC)})")
    parser.add_argument("--synthetic-items", type=int, default=SYNTHETIC_ITEMS)
    parser.add_argument("--max-items", type=int, default=None, help="cap every stream")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--model", default=LOGISTIC_MODEL,
                        help="learner of the anchors and of our rows that name none")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ours", type=_ours_flag, action="append", default=[],
                        metavar="NAME=JSON", help="add or override one of our rows (repeatable)")
    parser.add_argument("--rows", type=_csv(str), default=None,
                        help="comma-separated names: run only these of our rows (plus the default)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the full-label reference runs (quicker policy iterations)")
    parser.add_argument("--rows-from", type=Path, metavar="RESULTS_JSON",
                        help="our rows and the default row as this results file recorded them "
                             "(instead of OURS): reruns an exploratory run's rows")
    parser.add_argument("--only-ours", action="store_true",
                        help="run only our rows and random; anchors come from the cache")
    parser.add_argument("--no-anchors", action="store_true",
                        help="run only our rows and random, no anchor from the cache either")
    parser.add_argument("--rerun-anchors", action="store_true", help="ignore the anchor cache")
    tutorial = parser.add_mutually_exclusive_group()
    tutorial.add_argument("--tutorial", dest="tutorial", action="store_true", default=None,
                          help="replay scikit-activeml's stream tutorial (default in the full run, "
                               "not with --quick or --only-ours)")
    tutorial.add_argument("--no-tutorial", dest="tutorial", action="store_false")
    tutorial.add_argument("--tutorial-only", action="store_true",
                          help="only the tutorial replay: print its table, write no results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke configuration: 2 streams, 1 budget, 1 seed, 600 items")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="label_efficiency",
                        help="the results' file names: NAME.json, NAME.md, NAME.png in --out")
    args = parser.parse_args(argv)
    args.only_ours = args.only_ours or args.no_anchors
    if args.quick:
        args.streams = args.streams or ["phishing", "hyperplane"]
        args.budgets, args.seeds = [0.10], [0]
        args.max_items = args.max_items or 600
        args.synthetic_items = min(args.synthetic_items, args.max_items)
    if args.tutorial_only:
        args.tutorial, args.streams = True, []
    if args.tutorial is None:  # the full run replays it; quick and --only-ours iterations skip it
        args.tutorial = not (args.quick or args.only_ours)
    args.ours = dict(args.ours)
    if args.batch_size < 1 or args.jobs < 1:
        parser.error("--batch-size and --jobs must be at least 1")
    if any(not 0 < b <= 1 for b in args.budgets):
        parser.error("budgets must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    benchmark(parse_args(argv))
    return 0


__all__ = ["ANCHORS", "DEFAULT_ROW", "OURS", "benchmark", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
