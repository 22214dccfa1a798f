// The ceiling for scripts/bench: a minimal JavaScript Worker that returns the same bytes and
// headers as a cache hit of the share page, with no cache lookup, no routing and no checks.
// scripts/bench writes page.html and headers.json next to this file before starting it.
import page from "./page.html";
import headers from "./headers.json";

export default {
  async fetch() {
    return new Response(page, { status: 200, headers });
  },
};
