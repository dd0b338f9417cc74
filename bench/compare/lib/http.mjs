// A small HTTP/1.1 keep-alive client over raw TCP: one request in flight
// per connection, Content-Length or chunked responses. Much cheaper per
// request than node:http, so one core can drive thousands of long polls.
import net from "node:net";

const CRLFCRLF = Buffer.from("\r\n\r\n");

export class Conn {
  constructor(host, port, hostHeader) {
    this.host = host;
    this.port = port;
    this.hostHeader = hostHeader || `${host}:${port}`;
    this.sock = null;
    this.buf = null;
    this.pending = null; // callback of the request in flight
    this.res = null; // response being parsed
    this.closed = false;
    this.connecting = null;
  }

  connect() {
    if (this.sock && !this.sock.destroyed) return Promise.resolve();
    if (this.connecting) return this.connecting;
    this.connecting = new Promise((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port });
      s.setNoDelay(true);
      let done = false;
      s.once("connect", () => {
        done = true;
        this.connecting = null;
        resolve();
      });
      s.on("data", (c) => this.onData(c));
      s.on("error", (e) => {
        if (!done) {
          done = true;
          this.connecting = null;
          reject(e);
        }
        this.fail(e);
      });
      s.on("close", () => this.fail(new Error("connection closed")));
      this.sock = s;
      this.buf = null;
      this.res = null;
    });
    return this.connecting;
  }

  fail(err) {
    this.sock = null;
    const p = this.pending;
    this.pending = null;
    if (p) p(err);
  }

  // Resolves {status, headers, body(Buffer)}; headers: lowercase name -> value.
  request(method, path, body, extraHeaders = "") {
    return new Promise((resolve, reject) => {
      this.send(method, path, body, extraHeaders, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  // Callback form (cheaper on the hot path): cb(err, {status, headers, body}).
  send(method, path, body, extraHeaders, cb) {
    if (this.pending) return cb(new Error("request already in flight"));
    if (!this.sock || this.sock.destroyed) {
      this.connect().then(
        () => this.send(method, path, body, extraHeaders, cb),
        (e) => cb(e),
      );
      return;
    }
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n${extraHeaders || ""}`;
    this.pending = cb;
    if (body != null) {
      const len = typeof body === "string" ? Buffer.byteLength(body) : body.length;
      head += `Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;
      if (typeof body === "string") this.sock.write(head + body);
      else this.sock.write(Buffer.concat([Buffer.from(head), body]));
    } else {
      if (method !== "GET") head += "Content-Length: 0\r\n";
      this.sock.write(head + "\r\n");
    }
  }

  onData(chunk) {
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (!this.res) {
        const i = this.buf.indexOf(CRLFCRLF);
        if (i < 0) return;
        const lines = this.buf.subarray(0, i).toString("latin1").split("\r\n");
        this.buf = this.buf.subarray(i + 4);
        const status = parseInt(lines[0].split(" ")[1], 10);
        const headers = {};
        for (let k = 1; k < lines.length; k++) {
          const c = lines[k].indexOf(":");
          if (c > 0) headers[lines[k].slice(0, c).trim().toLowerCase()] = lines[k].slice(c + 1).trim();
        }
        let len = -1;
        if (headers["content-length"] !== undefined) len = parseInt(headers["content-length"], 10);
        else if ((headers["transfer-encoding"] || "").includes("chunked")) len = -2;
        else if (status === 204 || status === 304 || status < 200) len = 0;
        this.res = { status, headers, len, chunks: [] };
      }
      const r = this.res;
      if (r.len >= 0) {
        if (this.buf.length < r.len) return;
        const body = this.buf.subarray(0, r.len);
        this.buf = this.buf.subarray(r.len);
        this.finish(body);
      } else if (r.len === -2) {
        // chunked
        let done = false;
        while (!done) {
          const j = this.buf.indexOf("\r\n");
          if (j < 0) return;
          const size = parseInt(this.buf.subarray(0, j).toString("latin1"), 16);
          if (size === 0) {
            // last chunk; expect trailing CRLF (no trailers)
            if (this.buf.length < j + 4) return;
            this.buf = this.buf.subarray(j + 4);
            done = true;
            break;
          }
          if (this.buf.length < j + 2 + size + 2) return;
          r.chunks.push(this.buf.subarray(j + 2, j + 2 + size));
          this.buf = this.buf.subarray(j + 2 + size + 2);
        }
        this.finish(Buffer.concat(r.chunks));
      } else {
        return; // read-until-close bodies are not used by these servers
      }
      if (this.buf.length === 0) {
        this.buf = null;
        return;
      }
    }
  }

  finish(body) {
    const r = this.res;
    this.res = null;
    const p = this.pending;
    this.pending = null;
    if (p) p(null, { status: r.status, headers: r.headers, body });
  }

  // Closes with RST (SO_LINGER 0) so 10,000 closed connections leave no
  // TIME_WAIT entries holding ephemeral ports for the next round.
  destroy() {
    this.closed = true;
    const s = this.sock;
    this.sock = null;
    if (s && !s.destroyed) {
      if (typeof s.resetAndDestroy === "function") s.resetAndDestroy();
      else s.destroy();
    }
    const p = this.pending;
    this.pending = null;
    if (p) p(new Error("destroyed"));
  }
}

// Convenience one-shot JSON request on a shared connection.
export async function jreq(conn, method, path, obj) {
  const body = obj === undefined ? null : typeof obj === "string" ? obj : JSON.stringify(obj);
  const r = await conn.request(method, path, body);
  let json = null;
  if (r.body.length) {
    try {
      json = JSON.parse(r.body.toString("utf8"));
    } catch {
      json = r.body.toString("utf8");
    }
  }
  return { status: r.status, headers: r.headers, json };
}
