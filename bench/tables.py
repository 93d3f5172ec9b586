"""BENCHMARKS.md's tables from bench/results/latest.json: `python -m bench.tables` prints them as Markdown."""

import json
import sys
from pathlib import Path

from bench.report import BEFORE
from tests.servers import ROOT

LATEST = ROOT / "bench" / "results" / "latest.json"


def ratio(spread):
    if spread["median"] is None:
        return "–"
    low, high = spread["range"]
    text = f"**{spread['median']:.2f}×** ({low:.2f}–{high:.2f})"
    return text + (f" {spread['target']}: {spread['verdict']}" if "verdict" in spread else "")


def ms(value):
    return f"{value:.1f}" if value is not None else "–"


def comparisons(data, prefix, title):
    """One table: the comparisons whose label starts with `prefix`."""
    rows = [
        f"| {title} | A req/s | B req/s | throughput A/B | A p99 ms | B p99 ms | p99 A/B |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, c in data["comparisons"].items():
        if not label.startswith(prefix):
            continue
        a, b = data["servers"][f"{c['group']} | {c['a']}"], data["servers"][f"{c['group']} | {c['b']}"]
        rows.append(
            f"| {label.removeprefix(prefix).strip(': ')} | {a['rps']:.0f} | {b['rps']:.0f} | {ratio(c['throughput'])} "
            f"| {ms(a['p99_ms'])} | {ms(b['p99_ms'])} | {ratio(c['p99'])} |"
        )
    return "\n".join(rows)


def before_after(data):
    """Issue 10's ratios then and now, and the service's extra cost per request over the bare route in µs
    (1/rps - 1/rps of the medians; one worker, so about one core's time)."""
    rows = [
        "| scenario | ratio before | ratio now (range) | extra µs/request before | now |",
        "|---|---|---|---|---|",
    ]
    for group, (old, service, bare) in BEFORE.items():
        c = data["comparisons"].get(f"stateless / bare: {group}")
        if c:
            a, b = data["servers"][f"{group} | {c['a']}"], data["servers"][f"{group} | {c['b']}"]
            low, high = c["throughput"]["range"]
            rows.append(
                f"| {group} | {old:.2f}× | {c['throughput']['median']:.2f}× ({low:.2f}–{high:.2f}) "
                f"| {1e6 / service - 1e6 / bare:.0f} | {1e6 / a['rps'] - 1e6 / b['rps']:.0f} |"
            )
    return "\n".join(rows)


def same_run(data):
    """The history part as one table: each version against the bare route, and now against each version."""
    groups = [g.removeprefix("history: ") for g in data["results"] if g.startswith("history: ")]
    if not groups:
        return ""
    c = data["comparisons"]
    revisions = [m.rpartition(" @")[2] for m in data["results"][f"history: {groups[0]}"] if " @" in m]
    head = ["scenario", "now / bare", *(f"{r} / bare" for r in revisions), *(f"now / {r}" for r in revisions)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in groups:
        cells = [c[f"history, against the bare route: now: {group}"]]
        cells += [c[f"history, against the bare route: {r}: {group}"] for r in revisions]
        cells += [c[f"history: now / {r}: {group}"] for r in revisions]
        rows.append(f"| {group} | " + " | ".join(ratio(cell["throughput"]) for cell in cells) + " |")
    return "\n".join(rows)


def rounds(data):
    """Every measurement, grouped, in the order of the rounds."""
    lines = []
    for group, members in data["results"].items():
        for member, results in members.items():
            for r, result in enumerate(results, 1):
                p50 = result["p50_us"] / 1000 if result["p50_us"] is not None else None
                p99 = result["p99_us"] / 1000 if result["p99_us"] is not None else None
                extra = ""
                if result.get("fast_path") is not None:
                    extra = f"  duplicates: {result['fast_path']} fast path, {result['from_database']} database"
                if (result["wrong"] and not member.startswith("bare")) or result["errors"]:  # bare: 200 to all
                    extra += f"  ({result['wrong']} wrong statuses, {result['errors']} socket errors)"
                lines.append(
                    f"{group:46} {member:22} round {r} {result['rps']:6.0f} req/s p50 {ms(p50):>5} ms "
                    f"p99 {ms(p99):>6} ms{extra}"
                )
    return "```\n" + "\n".join(lines) + "\n```"


def main():
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else LATEST).read_text())
    machine = data["machine"]
    print(f"{data['rounds']} rounds of {data['seconds']} s, {data['seconds_total']} s; load {machine['load']}\n")
    print(before_after(data) + "\n")
    print(comparisons(data, "stateless / bare", "stateless / bare route") + "\n")
    print(comparisons(data, "12", "issue 12") + "\n")
    print(comparisons(data, "group commit", "group commit") + "\n")
    print(comparisons(data, "one writer", "one writer") + "\n")
    print(comparisons(data, "11 head-reading / gthread", "worker model") + "\n")
    print(comparisons(data, "21", "issue 21: peers") + "\n")
    print(same_run(data) + "\n")
    print(comparisons(data, "history: now /", "now / an earlier commit") + "\n")
    print(comparisons(data, "history: default now /", "the default now / the stateless mode then") + "\n")
    print(comparisons(data, "history, against the bare route:", "each / the bare route, same rounds") + "\n")
    print(f"processing_time_ms medians: {data['median_processing_time_ms']}\n")
    print("\n".join(data.get("store", [])) + "\n")
    print(rounds(data))


if __name__ == "__main__":
    main()
