"""make bench's arithmetic and output: per-round ratios, their medians and ranges, targets, JSON, plot."""

import json
import statistics

from tests.servers import DEFAULT_WORKERS

BARE5 = f"bare x{DEFAULT_WORKERS}"
# BENCHMARKS.md before the package move (issue 10's "before"): ratio service / bare route, and their req/s
BEFORE = {
    "completed (dev)": (0.66, 647, 916),
    "completed (prod, secret)": (0.64, 601, 954),
    "completed (dev, LOG_LEVEL=WARNING)": (0.71, 683, 982),
    "duplicates": (0.76, 693, 909),
    "intermediate": (0.74, 679, 956),
    "invalid (400)": (0.78, 715, 938),
}
WORKERS = ("completed, 8 connections", "completed, 64 connections", "completed, 8 connections + 16 silent")
REDIS = f"redis x{DEFAULT_WORKERS}"
FASTAPI, NODE = "fastapi peer", "node peer"  # bench/peer_fastapi.py (uvicorn, 1 process), bench/peer_node.js
STATELESS_OF = ["stateless", "stateless, prod", "stateless, WARNING", "stateless", "stateless", "stateless"]
AT_LEAST, AT_MOST = ">=", "<="
# (label, group, A, B, throughput target, p99 target); a target is (AT_LEAST or AT_MOST, value) or None
COMPARISONS = [
    *[
        (f"stateless / bare: {g}", g, s, "bare", (AT_LEAST, old[0]), None)
        for (g, old), s in zip(BEFORE.items(), STATELESS_OF, strict=True)
    ],
    ("12a default / bare sqlite: completed", "db: completed", "default", "bare sqlite", (AT_LEAST, 0.75), None),
    ("12b default / bare (no database): duplicates", "db: duplicates", "default", BARE5, (AT_LEAST, 0.9), None),
    *[
        (f"12c default / stateless: {kind}", f"db: {kind}", "default", "stateless", (AT_LEAST, x), (AT_MOST, 2.0))
        for kind, x in (("completed", 1.0), ("duplicates", 2.0), ("progress", 1.5))
    ],
    *[
        (f"group commit: default / MAX_BATCH=1: {kind}", f"db: {kind}", "default", "default, MAX_BATCH=1", None, None)
        for kind in ("completed", "progress")
    ],
    *[
        (f"one writer: default / 1 worker: {kind}", f"db: {kind}", "default", "default, 1 worker", None, None)
        for kind in ("completed", "duplicates", "progress")
    ],
    *[
        (f"12d postgresql / stateless: {kind}", f"db: {kind}", "postgresql", "stateless", None, None)
        for kind in ("completed", "duplicates", "progress")
    ],
    *[
        (
            f"11 head-reading / gthread: {w}",
            f"workers: {w}",
            "stateless",
            "stateless, gthread",
            (AT_LEAST, 1),
            (AT_MOST, 1),
        )
        for w in WORKERS
    ],
    # issue 21: durability at the cost of nothing, against the peers a user would pick instead
    ("21 default / FastAPI peer: completed", "peers: completed", "default", FASTAPI, (AT_LEAST, 1.0), None),
    ("21 default / bare 5x4: completed", "peers: completed", "default", BARE5, (AT_LEAST, 0.5), (AT_MOST, 2.0)),
    ("21 stateless / bare 1x4: completed", "peers: completed", "stateless", "bare", (AT_LEAST, 0.85), (AT_MOST, 1.3)),
    ("21 default / stateless: progress", "peers: progress", "default", "stateless", (AT_LEAST, 1.5), None),
    ("21 default / stateless: duplicates", "peers: duplicates", "default", "stateless", (AT_LEAST, 2.0), None),
    *[
        (f"21 default / {name}: {kind}", f"peers: {kind}", "default", peer, None, None)
        for kind in ("completed", "progress", "duplicates")
        for name, peer in (("FastAPI peer", FASTAPI), ("Node peer", NODE))
        if (kind, peer) != ("completed", FASTAPI)
    ],
    ("21 default / stateless: completed", "peers: completed", "default", "stateless", None, None),
    *[
        (f"21 default, copies off / {name}: {kind}", f"peers: {kind}", "default, copies off", b, None, None)
        for kind, name, b in (
            ("completed", "FastAPI peer", FASTAPI),
            ("completed", "bare 5x4", BARE5),
            ("completed", "default", "default"),
            ("progress", "stateless", "stateless"),
        )
    ],
    (f"{REDIS} / stateless: completed", "redis: completed, 16 connections", REDIS, "stateless", None, None),
]


def ms(us):
    return None if us is None else us / 1000


def line(result):
    p50, p99 = ms(result["p50_us"]), ms(result["p99_us"])
    text = f"{result['rps']:7.0f} req/s p50 {_f(p50, 6)} ms p99 {_f(p99, 7)} ms"
    if result.get("fast_path") is not None:
        text += f"  duplicates: {result['fast_path']} fast path, {result['from_database']} from the database"
    if result["errors"] or result["wrong"]:
        text += f"  ({result['wrong']} wrong statuses, {result['errors']} socket errors)"
    return text


def _f(value, width, digits=2):
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def _ratio(a, b):
    return a / b if a is not None and b else None


def summarize(results, times, options):
    """Medians per server, and each comparison's per-round ratios, median, range and verdict."""
    members = {}
    for group, measured in results.items():
        for member, rounds in measured.items():
            p99s = [ms(r["p99_us"]) for r in rounds if r["p99_us"] is not None]
            members[f"{group} | {member}"] = {
                "rps": statistics.median(r["rps"] for r in rounds),
                "rps_range": [min(r["rps"] for r in rounds), max(r["rps"] for r in rounds)],
                "p99_ms": statistics.median(p99s) if p99s else None,
                "p99_range_ms": [min(p99s), max(p99s)] if p99s else None,
            }
    comparisons = {}
    for label, group, a, b, throughput, tail in COMPARISONS + _history(results):
        if group not in results or a not in results[group] or b not in results[group]:
            continue
        pairs = list(zip(results[group][a], results[group][b], strict=True))
        comparisons[label] = {
            "group": group,
            "a": a,
            "b": b,
            "throughput": _spread([_ratio(x["rps"], y["rps"]) for x, y in pairs], throughput),
            "p99": _spread([_ratio(x["p99_us"], y["p99_us"]) for x, y in pairs], tail),
        }
    print(f"\nmedian ratios, {options.rounds} rounds of {options.seconds} s (per-round range; verdict):")
    for label, c in comparisons.items():
        a, b = members[f"{c['group']} | {c['a']}"], members[f"{c['group']} | {c['b']}"]
        print(f"  {label:58} throughput {_show(c['throughput'])}  p99 {_show(c['p99'])}")
        print(f"  {'':58} {a['rps']:.0f} vs {b['rps']:.0f} req/s, p99 {_f(a['p99_ms'], 0)} vs {_f(b['p99_ms'], 0)} ms")
    median_times = {name: statistics.median(t) for name, t in times.items() if t}
    for name, value in median_times.items():
        print(f"  median processing_time_ms of a 1-image completed, {name}: {value:.3f} ms")
    return {
        "rounds": options.rounds,
        "seconds": options.seconds,
        "servers": members,
        "comparisons": comparisons,
        "median_processing_time_ms": median_times,
    }


def _history(results):
    """The history part's comparisons: now against each earlier commit (no slower, p99 no worse), and each
    against the bare route, the ratio issue 10 compares."""
    found = []
    for group, measured in results.items():
        if not group.startswith("history: "):
            continue
        kind = group.removeprefix("history: ")
        now = next(iter(measured))  # the members: now, each earlier commit, perhaps "default", then "bare"
        others = [m for m in measured if " @" in m]
        for old in others:
            revision = old.rpartition(" @")[2]
            found.append((f"history: now / {revision}: {kind}", group, now, old, (AT_LEAST, 1.0), (AT_MOST, 1.0)))
            if "default" in measured:
                label = f"history: default now / {revision}: {kind}"
                found.append((label, group, "default", old, (AT_LEAST, 1.0), (AT_MOST, 1.0)))
        for member in (now, *others):
            name = member.rpartition(" @")[2] if member in others else "now"
            found.append((f"history, against the bare route: {name}: {kind}", group, member, "bare", None, None))
    return found


def _spread(values, target):
    known = [v for v in values if v is not None]
    out = {"rounds": values, "median": statistics.median(known) if known else None}
    out["range"] = [min(known), max(known)] if known else None
    if target and known:
        op, value = target
        ok = (lambda v: v >= value) if op == AT_LEAST else (lambda v: v <= value)
        out["target"] = f"{op} {value}"
        met = sum(map(ok, known))
        out["verdict"] = (
            "met" if ok(out["median"]) else f"missed ({met} of {len(known)} rounds met)" if met else "missed"
        )
    return out


def _show(s):
    if s["median"] is None:
        return "-: B answered nothing"
    text = f"{s['median']:5.2f}x ({s['range'][0]:.2f}-{s['range'][1]:.2f})"
    return text + (f" {s['target']}: {s['verdict']}" if "verdict" in s else "")


def save(summary, results, directory):
    (directory / "latest.json").write_text(json.dumps({**summary, "results": results}, indent=1))
    if "db: completed" not in results:
        return  # the plot shows the database part
    try:
        plot(summary, directory / "configurations.png")
        print(f"plot: {directory / 'configurations.png'}")
    except ImportError:
        print("plot skipped: matplotlib is missing (make bench installs requirements-bench.txt)")


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["db: completed", "db: duplicates", "db: progress"]
    names = ["stateless", "default", "default, 1 worker", "default, MAX_BATCH=1", "postgresql", "bare sqlite", BARE5]
    servers = summary["servers"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [g + i * width for g in range(len(groups))]
        rows = [servers.get(f"{group} | {name}") for group in groups]
        axes[0].bar(xs, [r["rps"] if r else 0 for r in rows], width, label=name)
        axes[1].bar(xs, [(r["p99_ms"] or 0) if r else 0 for r in rows], width, label=name)
    for axis, title in zip(axes, ("requests/s (higher is better)", "p99 latency, ms (lower is better)"), strict=True):
        axis.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [g.removeprefix("db: ") for g in groups])
        axis.set_title(title)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{summary['rounds']} rounds x {summary['seconds']} s, wrk 8 connections, medians")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
