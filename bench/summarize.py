#!/usr/bin/env python3
"""Turns the latest `cargo bench -p weir-bench --bench engine` results into
the Markdown tables of RESULTS.md: medians in records/s and MB/s, and the
engine/raw ratio of every matching pair.

Criterion keeps its estimates as JSON under $CARGO_TARGET_DIR/criterion
(or $CRITERION_HOME); reading them back avoids copying numbers by hand.
Usage: python3 bench/summarize.py [criterion-dir]
"""

import json
import os
import sys
from pathlib import Path

# Every record carries this much payload (RECORD_BYTES in benches/engine.rs).
RECORD_BYTES = 100
# Groups written by benches/engine.rs; other criterion results in the shared
# target directory are ignored.
GROUPS = ("append_sync", "append_buffered", "append_concurrent_sync",
          "append_concurrent_buffered", "read_catchup")


def criterion_dir():
    """The directory criterion wrote to, resolved as criterion resolves it."""
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    target = os.environ.get("CARGO_TARGET_DIR",
                            str(Path.home() / ".cache/weir/target"))
    return Path(target) / "criterion"


def load(root):
    """Maps (group, function, parameter) to median records/s and its 95% CI."""
    out = {}
    for bench in root.glob("*/*/*/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        if meta["group_id"] not in GROUPS:
            continue
        est = json.loads((bench.parent / "estimates.json").read_text())
        elements = meta["throughput"]["Elements"]
        med = est["median"]
        # Estimates are nanoseconds per iteration; one iteration is
        # `elements` records.
        rate = lambda ns: elements * 1e9 / ns
        out[(meta["group_id"], meta["function_id"], meta["value_str"])] = (
            rate(med["point_estimate"]),
            rate(med["confidence_interval"]["upper_bound"]),
            rate(med["confidence_interval"]["lower_bound"]),
        )
    return out


def fmt_rate(r):
    """Records/s with a thousands separator, as whole numbers."""
    return f"{r:,.0f}"


def main():
    res = load(criterion_dir())
    if not res:
        sys.exit("no weir-bench results found")

    print("| group | case | parameters | median records/s | 95% CI records/s | MB/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (group, func, param), (rate, lo, hi) in sorted(
            res.items(), key=lambda kv: (GROUPS.index(kv[0][0]), kv[0][2], kv[0][1])):
        print(f"| {group} | {func} | {param} | {fmt_rate(rate)} | "
              f"{fmt_rate(lo)} – {fmt_rate(hi)} | {rate * RECORD_BYTES / 1e6:.1f} |")

    print()
    print("| group | parameters | engine/raw_puts | engine/raw_value |")
    print("| --- | --- | ---: | ---: |")
    for group in ("append_sync", "append_buffered"):
        params = sorted({p for (g, f, p) in res if g == group and f == "engine"})
        for p in params:
            eng = res[(group, "engine", p)][0]
            cells = []
            for raw in ("raw_puts", "raw_value"):
                ref = res.get((group, raw, p))
                cells.append(f"{eng / ref[0]:.2f}" if ref else "–")
            print(f"| {group} | {p} | {cells[0]} | {cells[1]} |")

    print()
    print("| parameters | engine/raw_scan | engine/raw_scan_copy |")
    print("| --- | ---: | ---: |")
    for (g, f, p), (rate, _, _) in sorted(res.items()):
        if g == "read_catchup" and f == "engine":
            cells = []
            for raw in ("raw_scan", "raw_scan_copy"):
                ref = res.get((g, raw, p))
                cells.append(f"{rate / ref[0]:.2f}" if ref else "–")
            print(f"| {p} | {cells[0]} | {cells[1]} |")

    print()
    print("| mode | parameters | concurrent records/s | serial records/s | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for mode in ("sync", "buffered"):
        for (g, f, p), (rate, _, _) in sorted(res.items()):
            if g != f"append_concurrent_{mode}":
                continue
            serial_p = p.rsplit("/inflight=", 1)[0]
            serial = res.get((f"append_{mode}", "engine", serial_p))
            if serial:
                print(f"| {mode} | {p} | {fmt_rate(rate)} | {fmt_rate(serial[0])} | "
                      f"{rate / serial[0]:.1f}× |")


if __name__ == "__main__":
    main()
