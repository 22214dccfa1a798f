// Reproduces cloudflare/workers-sdk#15768 with the real Miniflare of node_modules: a Worker that
// closes its Hyperdrive socket while the database is still sending makes the local Hyperdrive
// proxy write into a reset socket with no error listener. Without the guard
// (hyperdrive-proxy-guard.cjs) that ends this Node process; with it, the process answers every
// request and exits 0. Run by chaos::miniflares_hyperdrive_proxy_ends_the_process_on_a_reset_unless_guarded.
//
//   REPO=<checkout> node [--require=…/hyperdrive-proxy-guard.cjs] hyperdrive-proxy-repro.mjs
import net from "node:net";
import { createRequire } from "node:module";
const require = createRequire(process.env.REPO + "/package.json");
const { Miniflare } = require("miniflare");

const db = net.createServer((socket) => {
  socket.on("error", () => {});
  const chunk = Buffer.alloc(64 * 1024, 65);
  const pump = () => { while (!socket.destroyed && socket.write(chunk)) {} };
  socket.on("drain", pump);
  socket.once("data", pump);
});
await new Promise((r) => db.listen(0, "127.0.0.1", r));
const port = db.address().port;

const mf = new Miniflare({
  modules: true,
  compatibilityDate: "2025-09-01",
  hyperdrives: { DB: `postgres://u:p@127.0.0.1:${port}/d?sslmode=disable` },
  script: `export default { async fetch(request, env) {
    const socket = env.DB.connect();
    const writer = socket.writable.getWriter();
    await writer.write(new Uint8Array([0, 0, 0, 8, 4, 210, 22, 47]));
    const reader = socket.readable.getReader();
    await reader.read();
    await socket.close();
    return new Response("closed");
  } }`,
});
let answered = 0;
for (let i = 0; i < 20; i++) {
  try { await (await mf.dispatchFetch("http://localhost/")).text(); answered++; } catch (e) { console.log("fetch failed", e.message); }
  await new Promise((r) => setTimeout(r, 50));
}
await new Promise((r) => setTimeout(r, 500));
console.log(`answered ${answered} of 20; the process lived`);
await mf.dispose();
db.close();
process.exit(0);
