"""Render every generated part of the docs: the blocks between ``<!-- begin: KEY -->`` and
``<!-- end: KEY -->`` in README.md and docs/**/*.md (reference tables from the code, results
tables from ``benchmarks/results/``) and the pictures drawn from results files.

Usage::

    python docs/tools/render.py           # rewrite the blocks and pictures
    python docs/tools/render.py --check   # exit 1, naming each block that differs (make test runs it)
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import cli_reference, metrics_reference, settings_reference  # noqa: E402
from results_tables import RESULTS, ROOT, TABLES  # noqa: E402

DOCS = ROOT / "docs"
IMAGES = DOCS / "images"
BLOCK = re.compile(r"(<!-- begin: (?P<key>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=key) -->)", re.S)
GENERATORS: dict[str, Callable[[], list[str]]] = {
    **TABLES,
    "settings": settings_reference,
    "cli": cli_reference,
    "metrics": metrics_reference,
}
# results pictures shown as they are: copied into the site (mkdocs serves only docs/)
COPIED_IMAGES = {RESULTS / "label_efficiency.png": IMAGES / "label_efficiency.png"}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def render_text(text: str, where: str) -> str:
    def fill(match: re.Match[str]) -> str:
        key = match["key"]
        if key not in GENERATORS:
            raise SystemExit(f"{where}: unknown generated block {key!r}; known: {', '.join(sorted(GENERATORS))}")
        body = "\n".join(GENERATORS[key]()).strip("\n")
        return f"{match[1]}{body}\n{match[4]}"

    return BLOCK.sub(fill, text)


def stale_blocks(path: Path) -> list[str]:
    """The keys of the blocks of ``path`` whose text differs from what the generators give."""
    text = path.read_text()
    rendered = render_text(text, str(path.relative_to(ROOT)))
    if rendered == text:
        return []
    now = {m["key"]: m["body"] for m in BLOCK.finditer(rendered)}
    return [m["key"] for m in BLOCK.finditer(text) if m["body"] != now[m["key"]]]


def draw_throughput_chart(path: Path) -> None:
    """Items/s of each pipeline at 16 features, and p99 latency per offered load, from throughput.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from results_tables import load
    from throughput_report import RATE_COLUMNS, best_rates

    doc = load("throughput")
    best = best_rates(doc)
    names = dict(RATE_COLUMNS)
    bars = sorted(((names.get(p, p), r) for (p, d), r in best.items() if d == 16), key=lambda kv: kv[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.1, 1]})
    left.barh([n.replace("`", "") for n, _ in bars], [r / 1000 for _, r in bars], color="#4c72b0")
    left.set_xlabel("thousand items/s (16 features, best round)")
    left.set_title("Throughput through the embedded broker")
    runs = [r for r in doc["runs"] if r["load"] and r.get("p99_ms") is not None]
    for pipeline, color in (("ceiling-predictions", "#55a868"), ("streamer-inproc", "#4c72b0"), ("streamer", "#c44e52")):
        points = sorted((r["load"] / 1000, r["p99_ms"]) for r in runs if r["pipeline"] == pipeline)
        if points:
            right.plot(*zip(*points, strict=True), "o", color=color, label=names.get(pipeline, pipeline), alpha=0.8)
    right.set_xlabel("offered load (thousand items/s)")
    right.set_ylabel("p99 decision latency (ms)")
    right.set_title("Latency tail, every round, learning from an annotator")
    right.legend()
    m = doc["machine"]
    fig.text(0.01, 0.01, f"benchmarks/results/throughput.json, commit {m.get('git_commit')}, {m['date'][:10]}, "
             f"{m['cpu_count']}-core {m['cpu']}", fontsize=8, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything differs")
    args = parser.parse_args(argv)
    problems: list[str] = []
    for path in pages():
        if args.check:
            problems += [f"{path.relative_to(ROOT)}: block {key!r} differs from its source; run "
                         "`python docs/tools/render.py`" for key in stale_blocks(path)]
        else:
            text = path.read_text()
            rendered = render_text(text, str(path.relative_to(ROOT)))
            if rendered != text:
                path.write_text(rendered)
                print(f"rendered {path.relative_to(ROOT)}")
    for source, copy in COPIED_IMAGES.items():
        if args.check:
            if not copy.exists() or copy.read_bytes() != source.read_bytes():
                problems.append(f"{copy.relative_to(ROOT)} is not a copy of {source.relative_to(ROOT)}")
        else:
            shutil.copyfile(source, copy)
    chart = IMAGES / "throughput.png"
    if not args.check:
        draw_throughput_chart(chart)
    elif not chart.exists():
        problems.append(f"{chart.relative_to(ROOT)} is missing")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
