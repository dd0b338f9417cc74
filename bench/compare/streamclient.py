#!/usr/bin/env python3
"""Small load client for the non-Durable-Streams peers of bench/compare/run:
Redis Streams (XADD / XREAD / XRANGE, redis-py asyncio) and NATS JetStream
(nats-py). One JSON object is printed on stdout.

  streamclient.py redis|nats latency --addr HOST:PORT --rate 10000 --batch 10 --secs 10 --warmup 2
      One producer appends `batch` records of `size` bytes every batch/rate
      seconds (a pipeline of XADDs / `batch` concurrent JetStream publishes
      awaiting their acks); one live subscriber (XREAD BLOCK / an ordered push
      consumer) reads them. Each payload starts with the send time (ns), so
      the subscriber measures end-to-end latency; ack latency is per batch.
  streamclient.py redis|nats fill --addr HOST:PORT --record-bytes N --total-bytes T
      Appends T bytes as records of N bytes (one at a time, each acked).
  streamclient.py redis|nats read --addr HOST:PORT --secs S --expect-bytes T
      Reads the whole stream from the start, again and again, for S seconds
      (XRANGE pages of 16 records / a JetStream ordered consumer); counts bytes.

Python is the client's ceiling, not the server's: the figures are what this
client reached, which is stated next to them in bench/RESULTS.md.
"""
import argparse
import asyncio
import json
import os
import struct
import sys
import time

STREAM = "bench"


def summary(us):
    us = sorted(us)
    if not us:
        return {"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0, "count": 0}
    def at(p):
        return us[min(len(us) - 1, int(p / 100.0 * (len(us) - 1) + 0.5))]
    return {"p50": at(50), "p90": at(90), "p99": at(99), "p999": at(99.9), "max": us[-1], "count": len(us)}


def payload(size, seq, ts_ns=None):
    head = struct.pack(">QQ", time.time_ns() if ts_ns is None else ts_ns, seq)
    return head + os.urandom(max(0, size - len(head)))


class Window:
    """The measured window of one latency run, and what the subscriber saw in
    it. Send times are stamped as weir-load stamps them: at a fixed rate a
    batch carries its *scheduled* time (a producer that falls behind is
    charged the queueing delay, no coordinated omission) and counts if
    scheduled after the warm-up."""

    def __init__(self, warmup, secs):
        self.mono0, self.wall0 = time.monotonic(), time.time_ns()
        self.warm_wall = self.wall0 + int(warmup * 1e9)
        self.warm_end = self.mono0 + warmup
        self.end = self.warm_end + secs
        self.delivered, self.e2e = 0, []

    def wall(self, mono):
        return self.wall0 + int((mono - self.mono0) * 1e9)

    def deliver(self, mono, now_ns, sent_ns):
        """Books one record received at `mono` / `now_ns`, sent at `sent_ns`."""
        if self.warm_end <= mono < self.end:
            self.delivered += 1
        if sent_ns >= self.warm_wall:
            self.e2e.append((now_ns - sent_ns) // 1000)

    def report(self, appended, acks, secs):
        return {"appended": appended, "delivered": self.delivered,
                "append_records_per_sec": appended / secs,
                "deliver_records_per_sec": self.delivered / secs,
                "ack_latency_us": summary(acks), "e2e_latency_us": summary(self.e2e)}


# ---------------------------------------------------------------- redis
async def produce(a, w, send):
    """One paced producer: every batch/rate seconds until `w.end`, `a.batch`
    payloads stamped with their scheduled send time go to `send(bodies)`, with
    up to `a.inflight` batches waiting for their acks at once (as weir-load's
    --inflight), so a rate above one batch per ack round trip can be held.
    Returns the records acked inside the window and the ack latencies (µs)."""
    paced = a.rate < 1e8
    slots, pending = asyncio.Semaphore(a.inflight), set()
    appended, acks = 0, []

    async def one(sched, bodies):
        nonlocal appended
        try:
            await send(bodies)
            done = time.monotonic()
            if w.warm_end <= done < w.end:
                appended += len(bodies)
            if sched >= w.warm_end:
                acks.append(int((done - sched) * 1e6))
        finally:
            slots.release()

    period = a.batch / a.rate
    nxt = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        if now >= w.end:
            break
        if now < nxt:
            await asyncio.sleep(nxt - now)
        sched = nxt if paced else time.monotonic()
        nxt += period
        bodies = []
        for _ in range(a.batch):
            bodies.append(payload(a.size, seq, w.wall(sched)))
            seq += 1
        await slots.acquire()
        t = asyncio.create_task(one(sched, bodies))
        pending.add(t)
        t.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return appended, acks


async def redis_conn(addr):
    import redis.asyncio as aioredis
    host, port = addr.rsplit(":", 1)
    return aioredis.Redis(host=host, port=int(port), socket_timeout=30)


async def redis_latency(a):
    r = await redis_conn(a.addr)
    sub = await redis_conn(a.addr)
    await r.delete(STREAM)
    w = Window(a.warmup, a.secs)
    stop = asyncio.Event()

    async def consume():
        last = "$"
        while not stop.is_set():
            res = await sub.xread({STREAM: last}, count=1000, block=500)
            now_ns = time.time_ns()
            mono = time.monotonic()
            for _name, entries in res or []:
                for eid, fields in entries:
                    last = eid
                    w.deliver(mono, now_ns, struct.unpack(">Q", fields[b"d"][:8])[0])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)

    async def send(bodies):
        p = r.pipeline(transaction=False)
        for d in bodies:
            p.xadd(STREAM, {"d": d})
        await p.execute()

    appended, acks = await produce(a, w, send)
    await asyncio.sleep(a.drain)
    stop.set()
    await task
    return w.report(appended, acks, a.secs)


async def redis_fill(a):
    r = await redis_conn(a.addr)
    await r.delete(STREAM)
    n = a.total_bytes // a.record_bytes
    body = os.urandom(a.record_bytes)
    t = time.monotonic()
    for _ in range(n):
        await r.xadd(STREAM, {"d": body})
    secs = time.monotonic() - t
    return {"records": n, "bytes": n * a.record_bytes, "secs": secs, "mbps": n * a.record_bytes / secs / 1e6}


async def redis_read(a):
    r = await redis_conn(a.addr)
    total = passes = bad = 0
    end = time.monotonic() + a.secs
    start = time.monotonic()
    while time.monotonic() < end:
        got, lo = 0, "-"
        while time.monotonic() < end:
            res = await r.xrange(STREAM, min=lo, max="+", count=16)
            if not res:
                break
            for eid, fields in res:
                got += len(fields[b"d"])
            lo = "(" + res[-1][0].decode()
            if len(res) < 16:
                break
        total += got
        if time.monotonic() < end:
            passes += 1
            bad += got != a.expect_bytes
    secs = time.monotonic() - start
    return {"bytes": total, "secs": secs, "mbps": total / secs / 1e6, "passes": passes, "bad_passes": bad}


# ---------------------------------------------------------------- nats
async def nats_conn(addr):
    import nats
    nc = await nats.connect(f"nats://{addr}", max_reconnect_attempts=1)
    return nc, nc.jetstream(timeout=30)


async def nats_stream(js):
    from nats.js.api import StreamConfig, StorageType
    try:
        await js.delete_stream(STREAM)
    except Exception:
        pass
    await js.add_stream(StreamConfig(name=STREAM, subjects=[STREAM], storage=StorageType.FILE,
                                     max_msg_size=-1))


async def nats_latency(a):
    nc, js = await nats_conn(a.addr)
    await nats_stream(js)
    w = Window(a.warmup, a.secs)

    async def cb(msg):
        w.deliver(time.monotonic(), time.time_ns(), struct.unpack(">Q", msg.data[:8])[0])

    sub = await js.subscribe(STREAM, cb=cb, ordered_consumer=True)
    await asyncio.sleep(0.2)

    async def send(bodies):
        await asyncio.gather(*(js.publish(STREAM, d) for d in bodies))

    appended, acks = await produce(a, w, send)
    await asyncio.sleep(a.drain)
    await sub.unsubscribe()
    await nc.close()
    return w.report(appended, acks, a.secs)


async def nats_fill(a):
    nc, js = await nats_conn(a.addr)
    await nats_stream(js)
    n = a.total_bytes // a.record_bytes
    body = os.urandom(a.record_bytes)
    t = time.monotonic()
    for _ in range(n):
        await js.publish(STREAM, body)
    secs = time.monotonic() - t
    await nc.close()
    return {"records": n, "bytes": n * a.record_bytes, "secs": secs, "mbps": n * a.record_bytes / secs / 1e6}


async def nats_read(a):
    nc, js = await nats_conn(a.addr)
    info = await js.stream_info(STREAM)
    n = info.state.messages
    total = passes = bad = 0
    start = time.monotonic()
    end = start + a.secs
    while time.monotonic() < end:
        got = cnt = 0
        done = asyncio.Event()

        async def cb(msg):
            nonlocal got, cnt
            got += len(msg.data)
            cnt += 1
            if cnt >= n:
                done.set()

        sub = await js.subscribe(STREAM, cb=cb, ordered_consumer=True)
        try:
            await asyncio.wait_for(done.wait(), max(0.01, end - time.monotonic()))
            passes += 1
            bad += got != a.expect_bytes
        except asyncio.TimeoutError:
            pass
        await sub.unsubscribe()
        total += got
    secs = time.monotonic() - start
    await nc.close()
    return {"bytes": total, "secs": secs, "mbps": total / secs / 1e6, "passes": passes, "bad_passes": bad}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("system", choices=["redis", "nats"])
    ap.add_argument("mode", choices=["latency", "fill", "read"])
    ap.add_argument("--addr", required=True)
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--drain", type=float, default=2)
    ap.add_argument("--record-bytes", type=int, default=262144)
    ap.add_argument("--total-bytes", type=int, default=256 << 20)
    ap.add_argument("--expect-bytes", type=int, default=256 << 20)
    a = ap.parse_args()
    fn = globals()[f"{a.system}_{a.mode}"]
    print(json.dumps(asyncio.run(fn(a))))


if __name__ == "__main__":
    main()
