// A CPU profile of the Worker under load, by function (a diagnostic, not part of scripts/bench).
//
//   KEEP_WASM_NAMES=1 scripts/dev                      # a build that keeps function names
//   wrk -t2 -c32 -d20s -s bench/wrk/requests.lua http://127.0.0.1:8787 -- hit TOKENS_FILE &
//   node bench/cpu-profile.mjs [--seconds 10] [--out FILE.cpuprofile] [--top 40]
//
// Finds the workerd process that runs the Worker (wrangler starts it with --inspector-addr; its
// /json lists core:user:babybook-edge), samples it over the Chrome DevTools Protocol every 100 µs,
// and prints each function's share of the busy samples: inclusive (the function and what it
// calls) and self. Samples are wall-clock on a loaded machine: read shares, not times. The .cpuprofile
// opens in Chrome DevTools.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const seconds = Number(args.seconds ?? 10);
const top = Number(args.top ?? 40);

const lines = (command, args) => {
  try {
    return execFileSync(command, args).toString().split("\n").filter(Boolean);
  } catch {
    return [];
  }
};

async function inspectorUrl() {
  const pids = lines("pgrep", ["-f", "--", "--inspector-addr="]);
  for (const line of lines("ss", ["-ltnpH"])) {
    if (!pids.some((pid) => line.includes(`pid=${pid},`))) continue;
    const port = line.match(/127\.0\.0\.1:(\d+)/)?.[1];
    if (!port) continue;
    try {
      const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
      const worker = targets.find((t) => t.id === "core:user:babybook-edge");
      if (worker) return worker.webSocketDebuggerUrl;
    } catch {}
  }
  throw new Error("no workerd with an inspector serving core:user:babybook-edge: is scripts/dev running?");
}

function session(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let id = 0;
    const pending = new Map();
    ws.on("error", reject);
    ws.on("close", () => {
      if (pending.size) {
        console.error("cpu-profile: the Worker's inspector closed before the profile was taken");
        process.exit(1);
      }
    });
    ws.on("message", (m) => {
      const d = JSON.parse(m);
      pending.get(d.id)?.(d);
      pending.delete(d.id);
    });
    ws.on("open", () =>
      resolve({
        send: (method, params = {}) =>
          new Promise((done) => {
            pending.set(++id, done);
            ws.send(JSON.stringify({ id, method, params }));
          }),
        close: () => ws.close(),
      }),
    );
  });
}

const name = (node) =>
  (node.callFrame.functionName || `(${node.callFrame.url.split("/").pop()}:${node.callFrame.lineNumber})`).replace(
    /::h[0-9a-f]{16}$/,
    "",
  );

function shares(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map();
  const self = new Map();
  let busy = 0;
  for (const sample of profile.samples) {
    const leaf = name(byId.get(sample));
    if (leaf === "(idle)") continue;
    busy++;
    self.set(leaf, (self.get(leaf) ?? 0) + 1);
    const seen = new Set();
    for (let id = sample; id !== undefined; id = parent.get(id)) {
      const n = name(byId.get(id));
      if (!seen.has(n)) inclusive.set(n, (inclusive.get(n) ?? 0) + 1);
      seen.add(n);
    }
  }
  return { busy, inclusive, self };
}

const inspector = await session(await inspectorUrl());
await inspector.send("Profiler.enable");
await inspector.send("Profiler.setSamplingInterval", { interval: 100 });
await inspector.send("Profiler.start");
await new Promise((r) => setTimeout(r, seconds * 1000));
const { result } = await inspector.send("Profiler.stop");
inspector.close();
if (args.out) writeFileSync(args.out, JSON.stringify(result.profile));

const { busy, inclusive, self } = shares(result.profile);
const table = (map) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([n, v]) => `${((100 * v) / busy).toFixed(1).padStart(6)} %  ${n.slice(0, 150)}`)
    .join("\n");
console.log(`${busy} busy samples of ${result.profile.samples.length}\n\ninclusive\n${table(inclusive)}\n\nself\n${table(self)}`);
