#!/usr/bin/env python3
"""Turns the raw results of bench/compare/run ($OUT/<target>.<workload>.*)
into the section "## Peer comparison (one run)" of bench/RESULTS.md."""
import csv
import io
import json
import os
import re
import time

E = os.environ
OUT = E["OUT"]
HEAD = "## Peer comparison (one run)"
TARGETS = "weir-quic-sync weir-http-sync weir-quic-buffered electric node redis-everysec redis-always nats".split()

DURABILITY = {
    "weir-quic-sync": "fsync per commit group (RocksDB WAL, `--durability sync`)",
    "weir-http-sync": "fsync per commit group (RocksDB WAL, `--durability sync`)",
    "weir-quic-buffered": "**none** (`--durability buffered`: WAL written, not fsynced; survives a process crash, not power loss)",
    "electric": "fsync per commit group (own sharded WAL, `--durability wal`)",
    "node": "fsync per append (concurrent callers share one) + LMDB sync commit",
    "redis-everysec": "**fsync every second** (AOF `appendfsync everysec`)",
    "redis-always": "fsync per write group (AOF `appendfsync always`: one fsync per event-loop pass, before the replies)",
    "nats": "**none per ack** (JetStream 2.9 file store: written to the page cache, synced in the background)",
}
CLIENT = {
    "weir-quic-sync": "weir-load (QUIC)", "weir-http-sync": "weir-load (HTTP)",
    "weir-quic-buffered": "weir-load (QUIC)", "electric": "weir-load (HTTP)", "node": "weir-load (HTTP)",
    "redis-everysec": "redis-benchmark; Python", "redis-always": "redis-benchmark; Python",
    "nats": "Python (nats-py)",
}


def rd(path):
    try:
        return open(path).read()
    except OSError:
        return None


def fig(t, w):
    """Parsed figure dict, or {'skip': reason} / {'fail': text} / None."""
    base = f"{OUT}/{t}.{w}"
    skip = rd(base + ".skip")
    if skip:
        return {"skip": skip.strip()}
    out = rd(base + ".out")
    if out is None:
        return None
    d = {"cmd": (rd(base + ".cmd") or "").strip(), "load": (rd(base + ".load") or "").strip()}
    js = rd(base + ".json")
    try:
        if js:  # weir-load --json
            d.update(json.loads(js))
            if d.get("catch_up"):  # weir-load --catch-up-records
                d["mbps"] = d["deliver_mb_per_sec"]
        elif out.lstrip().startswith("{"):  # streamclient.py
            d.update(json.loads(out.strip().splitlines()[-1]))
        elif out.lstrip().startswith('"test"'):  # redis-benchmark --csv
            row = list(csv.DictReader(io.StringIO(out.strip())))[-1]
            d["append_records_per_sec"] = float(row["rps"])
            d["ack_latency_us"] = {"p50": float(row["p50_latency_ms"]) * 1000, "p99": float(row["p99_latency_ms"]) * 1000}
        else:  # dsload key=value
            kv = dict(re.findall(r"(\w+)=(\S+)", out))
            for k, v in kv.items():
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
    except Exception as e:  # noqa: BLE001
        return {"fail": f"unparsable output ({e})", "cmd": d["cmd"]}
    if rd(base + ".rc") and not any(k in d for k in ("append_records_per_sec", "mbps")):
        return {"fail": f"exit {rd(base + '.rc').strip()}: {(rd(base + '.err') or '').strip()[-200:]}", "cmd": d["cmd"]}
    return d


def num(x, dec=0):
    if x is None:
        return "n/a"
    return f"{x:,.{dec}f}"


def ms(us):
    return "n/a" if us is None else f"{us / 1000:,.1f}"


def lat(d, key, p):
    v = (d or {}).get(key) or {}
    return v.get(p) if v.get("count", 1) else None


def cell(d, fn):
    if d is None:
        return "not run"
    if "skip" in d:
        return "skipped¹"
    if "fail" in d:
        return "failed²"
    return fn(d)


F = {t: {w: fig(t, w) for w in ("append", "latency", "fanout", "fill", "catchup")} for t in TARGETS}
present = [t for t in TARGETS if any(F[t][w] is not None for w in F[t])]

rows = []
rows.append("| target | client | durability | append rec/s (ack p50 ms) | latency @10k/s: achieved rec/s | e2e p50 / p99 ms | fan-out ×1000: deliveries/s | fan-out e2e p50 ms | lost / dup | catch-up MB/s (256 KiB records, 1 reader) | load avg |")
rows.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for t in present:
    a, l, f, c = (F[t][w] for w in ("append", "latency", "fanout", "catchup"))
    lost = sum(int((x or {}).get("lost", 0) or 0) for x in (a, l, f) if x and "skip" not in x and "fail" not in x)
    dup = sum(int((x or {}).get("duplicates", 0) or 0) for x in (a, l, f) if x and "skip" not in x and "fail" not in x)
    loads = "/".join((x or {}).get("load", "-") or "-" for x in (a, l, f, c))
    rows.append(
        f"| {t} | {CLIENT[t]} | {DURABILITY[t]} | "
        + cell(a, lambda d: f"{num(d.get('append_records_per_sec'))} ({ms(lat(d, 'ack_latency_us', 'p50'))})") + " | "
        + cell(l, lambda d: num(d.get("append_records_per_sec"))) + " | "
        + cell(l, lambda d: f"{ms(lat(d, 'e2e_latency_us', 'p50'))} / {ms(lat(d, 'e2e_latency_us', 'p99'))}") + " | "
        + cell(f, lambda d: num(d.get("deliver_records_per_sec"))) + " | "
        + cell(f, lambda d: ms(lat(d, "e2e_latency_us", "p50"))) + " | "
        + f"{lost} / {dup} | "
        + cell(c, lambda d: num(d.get("mbps"), 1)) + " | " + loads + " |"
    )


def val(t, w, getter):
    d = F.get(t, {}).get(w)
    if not d or "skip" in d or "fail" in d:
        return None
    try:
        return getter(d)
    except Exception:  # noqa: BLE001
        return None


def ratio(a, b, inverse=False):
    if not a or not b:
        return "n/a"
    return f"{(b / a if inverse else a / b):.2f}×"


METRICS = [
    ("append rec/s", "append", lambda d: d.get("append_records_per_sec"), False, "weir-quic-sync"),
    ("latency e2e p50 (peer ÷ Weir: >1 = Weir faster)", "latency", lambda d: d["e2e_latency_us"]["p50"] or None, True, "weir-quic-sync"),
    ("fan-out deliveries/s", "fanout", lambda d: d.get("deliver_records_per_sec"), False, "weir-quic-sync"),
    ("catch-up MB/s (Weir over HTTP)", "catchup", lambda d: d.get("mbps"), False, "weir-http-sync"),
]
peers = [t for t in present if not t.startswith("weir-")]
rat = ["| metric (Weir sync ÷ peer unless said) | " + " | ".join(peers) + " |", "| --- |" + " ---: |" * len(peers)]
for name, w, g, inv, base in METRICS:
    wv = val(base, w, g)
    rat.append(f"| {name} | " + " | ".join(ratio(wv, val(p, w, g), inv) for p in peers) + " |")

notes = []
for t in present:
    for w, d in F[t].items():
        if d and "skip" in d:
            notes.append(f"- ¹ {t} {w}: {d['skip']}.")
        if d and "fail" in d:
            notes.append(f"- ² {t} {w}: {d['fail']}")

fills = []
for t in present:
    d = F[t]["fill"]
    c = F[t]["catchup"] or {}
    if d and "skip" not in d and "fail" not in d:
        fills.append(f"{t} {num(d.get('mbps'), 1)}")
    elif c.get("catch_up"):
        fills.append(f"{t} {num(c['append_mb_per_sec'], 1)} (weir-load, 8 appends in flight)")

cmds = []
for t in present:
    for w in ("append", "latency", "fanout", "fill", "catchup"):
        d = F[t][w]
        if d and d.get("cmd"):
            cmds.append(f"- {t} {w}: `{d['cmd']}`")

section = f"""{HEAD}

- **Date:** {time.strftime('%Y-%m-%d')} ({time.strftime('%H:%M', time.gmtime())} UTC); the measured part took
  {int(E['T_END']) - int(E['T_START'])} s after builds and installs.
- **Machine:** {E['MACHINE']}.
- **Load:** {E.get('BENCH_NOTE') or 'what else ran on the machine was not recorded (set BENCH_NOTE)'}. Load average
  (1, 5, 15 min) at the start `{E['LOAD_START']}`, at the end `{E['LOAD_END']}`; the 1-minute value
  before each figure is in the last column (append/latency/fan-out/catch-up). Load generators
  run on the same 2 cores as the servers. Compare rows of this run only.
- **Command:** `{E['CMD']}` from the repository root (builds Weir `--release` after
  `source tools/env.sh`, installs the peers, runs every target in turn on a fresh data
  directory and free loopback ports, one server at a time, stops each; `trap` cleanup).
- **Versions:** Weir {E['WEIR_REV']}; Electric's `durable-streams` {E['ELECTRIC_VERSION']}
  (started by `bench/compare/http/run`'s `start_server`); `@durable-streams/server`
  {E['NODE_SERVER_VERSION']} (file-backed, `bench/compare/http/server.mjs`); {E['VERSIONS']}.
- **Workloads** (measured {E['SECS']} s after a {E['WARMUP_S']} s warm-up, 100-byte records, one stream):
  - *append*: saturation. Durable Streams servers: weir-load, 64 producers each with one
    1-record append in flight (64 HTTP connections; 4 QUIC connections). Redis:
    `redis-benchmark -c 64 -P 16` (1,024 XADDs in flight; its p50 is per command in a pipeline
    of 16). NATS: one Python client, 64 JetStream publishes in flight (client-bound).
  - *latency*: 10,000 records/s offered as 10 records per append every 1 ms by one producer
    with up to 4 appends in flight (`--inflight 4`; a server whose acks take more than 4 ms
    falls behind the schedule, and since send times are the *scheduled* times, that delay
    is in its latency figures; the achieved rate is in the table), one live subscriber;
    e2e = delivery time − send time stamped in the payload.
  - *fan-out*: the same producer, 1,000 live subscribers on the stream (8 client connections).
  - *catch-up*: a {E['FILL_MIB_C']} MiB stream, {int(E['FILL_MIB_C']) * 1024 * 1024 // int(E['REC_BYTES'])} records of {int(E['REC_BYTES']) // 1024} KiB appended one at a time, then one reader
    reads the whole stream from the start again and again for {E['READ_SECS_C']} s (Durable Streams
    servers: `bench/compare/http/dsload read --conns 1`, HTTP; Weir over QUIC: `weir-load
    --catch-up-records`, one fresh subscription from the start per pass, after a 1 s warm-up;
    Redis: XRANGE pages of 16 entries; NATS: an ordered push consumer), MB/s = body bytes /
    seconds (10⁶ B).
    Fill rates (MB/s, 1 writer): {', '.join(fills) or 'n/a'}.
- **Durability** is in every row: **bold** rows acknowledge before any fsync, so their
  append and latency figures are not comparable with the fsync'd rows without that caveat.

{chr(10).join(rows)}

Ratios (Weir's figure ÷ the peer's; Weir = weir-quic-sync, catch-up = weir-http-sync;
ratios against the bold peers compare fsync'd Weir with an unsynced or once-a-second peer):

{chr(10).join(rat)}

{chr(10).join(notes)}

Each figure's exact command (`$RUN` = the run's temp directory, ports as in that run):

{chr(10).join(cmds)}
"""

print(section)
if E.get("WRITE_RESULTS_C", "1") == "1":
    path = E["RESULTS_FILE"]
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = text.find("\n" + HEAD + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        m = re.search(r"^## ", text[start + 1 + len(HEAD):], re.M)
        end = len(text) if m is None else start + 1 + len(HEAD) + m.start()
        rest = text[end:]
        text = text[: start + 1] + section + ("\n" + rest if rest else "")
    open(path, "w").write(text.rstrip("\n") + "\n")
