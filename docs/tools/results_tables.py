"""The docs' results tables, each rendered from one file of ``benchmarks/results/`` (so every
figure quoted is that file's, digit for digit, with its commit and machine beside it).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput_report import best_rates, latency_table, rates_table, thousands  # noqa: E402

__all__ = ["TABLES", "load"]


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def provenance(name: str) -> str:
    """Where the figures below come from: the file, the commit measured, the date and machine."""
    doc = load(name)
    m = doc.get("machine", {})
    commit = f"commit `{m['git_commit']}`" if m.get("git_commit") else "commit not recorded"
    if m.get("streamer_uncommitted_changes"):
        commit += " (with uncommitted changes in streamer/)"
    wall = doc.get("wall_s") or doc.get("elapsed_s")
    took = f", {wall / 60:.0f} min" if wall else ""
    date = m.get("date", "")[:10] or "date not recorded"
    cpu = f"{m.get('cpu', '?')}, {m.get('cpu_count', '?')} cores"
    return f"*`benchmarks/results/{name}.json`: {commit}, {date}, {cpu}{took}.*"


def _pct(budget: float) -> str:
    return f"{budget * 100:g}%"


def _short(method: str) -> str:
    return method.replace("skactiveml.", "").replace("river.", "river ").replace("|", "\\|")


def accuracy_means(name: str) -> list[str]:
    """Mean accuracy over the streams, a row per budget, a column per method; best in bold."""
    doc = load(name)
    cells: dict[tuple[float, str], list[float]] = defaultdict(list)
    for cell in doc["table"]:
        if cell.get("accuracy_mean") is not None and cell["budget"] < 1:
            cells[(cell["budget"], cell["method"])].append(cell["accuracy_mean"])
    streams = len({c["stream"] for c in doc["table"]})
    methods = [m for m in doc["methods"] if any(k[1] == m for k in cells)]
    budgets = sorted({b for b, _ in cells})
    lines = [provenance(name), "", f"Mean accuracy over {streams} streams "
             f"(default row: **{doc['default_row']}**):", "",
             "| budget | " + " | ".join(_short(m) for m in methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for budget in budgets:
        means = {m: statistics.fmean(cells[(budget, m)]) for m in methods if cells.get((budget, m))}
        best = max(means.values())
        row = [(f"**{v:.3f}**" if v == best else f"{v:.3f}") if (v := means.get(m)) is not None else "–"
               for m in methods]
        lines.append(f"| {_pct(budget)} | " + " | ".join(row) + " |")
    return lines


def label_efficiency_goals() -> list[str]:
    doc = load("label_efficiency")
    verdicts = doc["verdicts"]
    by_budget: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for v in verdicts:
        by_budget[v["budget"]].append(v)
    n = len(verdicts)
    above_random = sum(v["delta_random"] > 0 for v in verdicts)
    at_best = [sum(v["delta_best_anchor"] >= 0 for v in vs) for vs in by_budget.values()]
    at_in_budget = [sum((v["delta_best_in_budget_anchor"] or 0) >= 0 for v in vs) for vs in by_budget.values()]
    leads = [statistics.fmean(v["delta_best_anchor"] for v in vs) * 100 for vs in by_budget.values()]
    budgets = ", ".join(_pct(b) for b in by_budget)
    at5 = sorted(by_budget.get(0.05, []), key=lambda v: -v["share_of_full_label"])
    reached = [v for v in at5 if v["share_of_full_label"] >= 0.97]
    return [
        provenance("label_efficiency"), "",
        f"- Above random sampling in **{above_random} of {n}** cells (stream × budget).",
        f"- At or above the best anchor in **{sum(at_best)} of {n}** cells "
        f"({', '.join(map(str, at_best))} at {budgets}); counting only anchors that stayed within "
        f"2% of the budget, {', '.join(map(str, at_in_budget))}.",
        "- Mean lead of the default over the best anchor of each cell: "
        + ", ".join(f"{lead:+.1f} points at {_pct(b)}" for lead, b in zip(leads, by_budget, strict=True)) + ".",
        f"- At 5%, at least 97% of the best single learner's full-label accuracy on **{len(reached)} "
        f"of {len(at5)}** streams: " + ", ".join(
            f"{v['stream']} {v['share_of_full_label'] * 100:.1f}%" for v in at5) + ".",
    ]


def throughput_rates() -> list[str]:
    return [provenance("throughput"), "", *rates_table(load("throughput"))]


def throughput_latency() -> list[str]:
    return [provenance("throughput"), "", *latency_table(load("throughput"))]


def throughput_profile() -> list[str]:
    doc = load("throughput_profile")
    lines = [provenance("throughput_profile"), ""]
    for title, run in doc["profiles"].items():
        p = run["profile"]
        rate = f"{run['items_per_s'] / 1000:.1f}k items/s" if run.get("items_per_s") else ""
        lines += [f"**{title}** ({rate}; the event loop's thread busy {p['busy_fraction'] * 100:.0f}% "
                  "of the samples). Share of the busy samples by stage:", "",
                  "| stage | % |", "|---|---:|"]
        for stage, share in sorted(p["stages_percent"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {stage} | {share:.1f} |")
        lines.append("")
    return lines[:-1]


def _runs_table(name: str, label: str = "pipeline") -> list[str]:
    doc = load(name)
    best = best_rates(doc)
    lines = [provenance(name), "", f"| {label} | features | items/s (best of the runs) |", "|---|---:|---:|"]
    for (pipeline, features), rate in sorted(best.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {pipeline} | {features} | {thousands(rate)} |")
    ratios = doc.get("ratios") or {}
    if ratios:
        lines += ["", "Ratios in that run: " + "; ".join(f"{k} **{v}**" for k, v in ratios.items()) + "."]
    return lines


def auto_cost() -> list[str]:
    return _runs_table("throughput_auto")


def faust_rates() -> list[str]:
    return _runs_table("throughput_faust_sampling")


def torch_throughput() -> list[str]:
    doc = load("throughput_torch_head")
    return [*_runs_table("throughput_torch_head"), "",
            f"Model: `{doc['setup']['streamer_settings'].get('model')}`, Redis pending store."]


def torch_digits() -> list[str]:
    doc = load("torch_head_digits")
    budgets = sorted({r["budget"] for r in doc["results"]})
    columns = list(dict.fromkeys(f"{r['model']} ({r['policy']})" for r in doc["results"]))
    acc = {(r["budget"], f"{r['model']} ({r['policy']})"): r["accuracy_mean"] for r in doc["results"]}
    s = doc["setup"]
    lines = [provenance("torch_head_digits"), "",
             f"`{s['data']}`, prequential, batches of {s['batch_size']}, mean over seeds "
             f"{', '.join(map(str, s['seeds']))}:", "",
             "| budget | " + " | ".join(f"`{_short(c)}`" for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for b in budgets:
        lines.append(f"| {_pct(b)} | " + " | ".join(f"{acc[(b, c)]:.4f}" if (b, c) in acc else "–"
                                                     for c in columns) + " |")
    return lines


def torch_scoring() -> list[str]:
    doc = load("torch_head")
    c = doc["config"]
    keys = [k for k in doc["rows"][0] if k.endswith("items_per_s")]
    lines = [provenance("torch_head"), "",
             f"The full scoring pass at d = {c['dim']} ({c['heads']} heads, {c['classes']} classes, "
             f"novelty against a {c['bank']:,} bank, {c['dtype']}); outputs agree within "
             + ", ".join(f"{v:.1e} ({k})" for k, v in doc["agreement_max_abs_diff"].items()) + ":", "",
             "| batch | " + " | ".join(k.removesuffix("_items_per_s").replace("_", " ") + " items/s"
                                      for k in keys) + " | ratio to numpy |",
             "|---:|" + "---:|" * (len(keys) + 1)]
    for row in doc["rows"]:
        ratios = ", ".join(f"{v}" for k, v in row.items() if k.endswith("_over_numpy"))
        lines.append(f"| {row['batch']:,} | " + " | ".join(f"{row[k]:,.0f}" for k in keys) + f" | {ratios} |")
    return lines


def scale_out() -> list[str]:
    doc, acc = load("scale_out"), load("scale_out_accuracy")
    lines = [provenance("scale_out"), "", "| replicas | features | items/s |", "|---:|---:|---:|"]
    for run in doc["runs"]:
        if run.get("kind") == "throughput":
            lines.append(f"| {run['replicas']} | {run['features']} | {thousands(run['items_per_s'])} |")
    lines += ["", f"Two replicas over one: **{doc['two_over_one']}×**.", "", provenance("scale_out_accuracy"), "",
              "| configuration | mean accuracy | spread | gap to one replica (points) |", "|---|---:|---:|---:|"]
    for config, s in acc["summary"].items():
        gap = f"{s['gap_points']:+.2f}" if "gap_points" in s else "–"
        lines.append(f"| {config} | {s['mean']:.4f} | {s['spread']:.4f} | {gap} |")
    return lines


def crash_accuracy() -> list[str]:
    doc = load("crash_accuracy")
    s = doc["summary"]
    ratios = ", ".join(f"{r['ratio']:.4f}" for r in doc["runs"])
    return [provenance("crash_accuracy"), "",
            f"Killed (`kill -9`) over undisturbed prequential accuracy in {s['runs']} runs: {ratios}; "
            f"mean **{s['ratio_mean']:.4f}** (target {s['target']}, "
            f"{'met' if s['mean_meets_target'] else 'not met'})."]


def checkpoint_stall() -> list[str]:
    doc = load("checkpoint_stall")
    lines = [provenance("checkpoint_stall"), "",
             "| ids in flight | longest loop gap, older way (ms) | longest loop gap, now (ms) | ratio |",
             "|---:|---:|---:|---:|"]
    for row in doc["rows"]:
        lines.append(f"| {row['in_flight']:,} | {row['baseline']['max_gap_ms_median']:.2f} | "
                     f"{row['streamer']['max_gap_ms_median']:.2f} | {row['gap_ratio_vs_baseline']} |")
    return lines


def restarts() -> list[str]:
    doc = load("restart")
    lines = [provenance("restart"), "", "| configuration | ready (median / max s) | first label applied "
             "(median / max s) |", "|---|---:|---:|"]
    for config, s in doc["summary"].items():
        lines.append(f"| {config} | {s['ready_s']['median']} / {s['ready_s']['max']} | "
                     f"{s['first_label_s']['median']} / {s['first_label_s']['max']} |")
    return lines


def group_join() -> list[str]:
    doc = load("group_join")
    lines = [provenance("group_join"), "", "| case | session timeout | median s | max s |", "|---|---|---:|---:|"]
    for row in doc["rows"]:
        lines.append(f"| {row['case']} | {row['session']} | {row['median_s']} | {row['max_s']} |")
    return lines


def broker_fuzzing() -> list[str]:
    doc = load("fuzz_broker")
    return [provenance("fuzz_broker"), "",
            f"{doc['messages_tried']:,} messages, {doc['bad_messages']:,} of them bad: "
            f"{doc['dead_letters_on_topic']:,} dead letters on the topic ({doc['dead_letters_in_metrics']:,} "
            f"counted in the metrics), {len(doc['dead_letters_by_reason'])} distinct reasons; "
            f"{doc['good_items_predicted']:,} of {doc['good_items']:,} good items predicted, "
            f"**{doc['good_items_lost']} lost**; the service "
            f"{'stayed up' if doc['service_alive'] else 'died'}; problems found: {len(doc['problems'])}."]


def simulate_vs_random() -> list[str]:
    doc = load("simulate_vs_random")
    lines = [provenance("simulate_vs_random"), "",
             f"`streamer simulate`, `{doc['model']}`, budget {_pct(doc['budget'])}, seeds "
             f"{', '.join(map(str, doc['seeds']))}:", "",
             f"| file | {doc['default_strategy']} | random |", "|---|---:|---:|"]
    for file, v in doc["verdicts"].items():
        lines.append(f"| {file} | {v['default']:.4f} | {v['random']:.4f} |")
    return lines


def headline() -> list[str]:
    """The README's two lines: label efficiency and speed, each with its date and commit."""
    le, tp = load("label_efficiency"), load("throughput")
    means: dict[str, list[float]] = defaultdict(list)
    for cell in le["table"]:
        if cell["budget"] == 0.05 and cell.get("accuracy_mean") is not None:
            means[cell["method"]].append(cell["accuracy_mean"])
    anchors = {m: statistics.fmean(v) for m, v in means.items() if "." in m}
    best_anchor = max(anchors, key=anchors.get)
    rates = best_rates(tp)
    ours, ceiling = rates[("streamer", 16)], rates[("ceiling-predictions", 16)]

    def stamp(doc: dict[str, Any]) -> str:
        m = doc["machine"]
        return f"({m['date'][:10]}, commit `{m.get('git_commit', 'not recorded')}`, {m['cpu_count']}-core {m['cpu']})"

    return [
        f"- **Label efficiency**: at a 5% budget, mean accuracy {statistics.fmean(means[le['default_row']]):.3f} "
        f"over {len(means[le['default_row']])} streams, against {anchors[best_anchor]:.3f} for the best "
        f"anchor ({_short(best_anchor)}) and {statistics.fmean(means['random']):.3f} for random "
        f"sampling {stamp(le)}.",
        f"- **Speed**: {thousands(ours)} items/s of 16 features through the embedded broker with Redis, "
        f"{ours / ceiling:.2f}× a raw aiokafka ceiling doing the same output work {stamp(tp)}.",
    ]


TABLES = {
    "headline": headline,
    "label-efficiency": lambda: accuracy_means("label_efficiency"),
    "label-efficiency-goals": label_efficiency_goals,
    "choice-members": lambda: accuracy_means("label_efficiency_choice_members"),
    "choice-warmup": lambda: accuracy_means("label_efficiency_choice_warmup"),
    "warmup-egl": lambda: accuracy_means("label_efficiency_warmup_egl"),
    "policies-portfolio": lambda: accuracy_means("label_efficiency_portfolio"),
    "auto-cost": auto_cost,
    "torch-digits": torch_digits,
    "torch-scoring": torch_scoring,
    "torch-throughput": torch_throughput,
    "throughput-rates": throughput_rates,
    "throughput-latency": throughput_latency,
    "throughput-profile": throughput_profile,
    "faust": faust_rates,
    "scale-out": scale_out,
    "crash-accuracy": crash_accuracy,
    "checkpoint-stall": checkpoint_stall,
    "restarts": restarts,
    "group-join": group_join,
    "broker-fuzzing": broker_fuzzing,
    "simulate-vs-random": simulate_vs_random,
}
