// Preloaded into `wrangler dev` (NODE_OPTIONS=--require) by the test stacks, the benchmark and
// scripts/dev. It gives the sockets of Miniflare's local Hyperdrive proxy the error listener
// upstream lacks, and changes nothing else.
//
// The bug: Miniflare's proxy (`HyperdriveProxyController#handleConnection` in
// node_modules/miniflare/dist/src/index.js) pipes the Worker's socket and the database's into each
// other (`clientSocket.pipe(dbSocket); dbSocket.pipe(clientSocket)`) with no 'error' listener on
// either. A reset on one of them (workerd closing a socket the proxy is still writing to, a
// database killed under load) is an unhandled 'error' event: an uncaught exception, which
// wrangler's handler logs ("Error: read ECONNRESET") and then ends the process. Reported upstream
// as cloudflare/workers-sdk#15768 ("[miniflare] Hyperdrive proxy crashes the Node process when the
// client socket errors", open); newer Miniflare skips the proxy for `sslmode=disable`
// (cloudflare/workers-sdk#13390), but wrangler 4.86 (the last release for Node 20) predates it.
// Production Hyperdrive has no such proxy: for the Worker a dead database is an error and a close,
// which is what this guard gives it too.
//
// How: every connection listener given to `net.createServer` is wrapped. While it runs (the
// proxy's handler calls `net.connect` for the database first, before any await), each socket that
// `net.connect` opens is paired with the connection's socket. An error on either socket of a pair
// destroys both (the Worker sees its connection close, as when a database goes away); a socket
// that already had an error listener keeps it, and one with no pair is destroyed alone.
"use strict";
const net = require("node:net");

const GUARDED = Symbol("babybook.guarded");
let pairing = null;

function guard(socket, peers) {
  if (socket[GUARDED]) return;
  socket[GUARDED] = true;
  socket.on("error", (error) => {
    if (process.env.HYPERDRIVE_PROXY_GUARD_QUIET !== "1") {
      process.stderr.write(`hyperdrive proxy guard: ${error.code || error.message}, connection closed\n`);
    }
    for (const s of peers) s.destroy();
  });
}

const connect = net.connect;
net.connect = net.createConnection = function guardedConnect(...args) {
  const socket = connect.apply(this, args);
  if (pairing) pairing.push(socket);
  return socket;
};

const createServer = net.createServer;
net.createServer = function guardedCreateServer(...args) {
  const i = args.findIndex((a) => typeof a === "function");
  if (i >= 0) {
    const listener = args[i];
    args[i] = function guardedListener(socket, ...rest) {
      const pair = [socket];
      const outer = pairing;
      pairing = pair;
      try {
        return listener.call(this, socket, ...rest);
      } finally {
        pairing = outer;
        for (const s of pair) guard(s, pair);
      }
    };
  }
  return createServer.apply(this, args);
};
