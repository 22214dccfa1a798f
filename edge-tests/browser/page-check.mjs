// Opens share pages in Debian's headless Chromium (driven by playwright-core) as a person would,
// and reports what the tests judge: axe-core's WCAG 2.1 AA violations (axe-core from npm, pinned),
// the text a person sees, screenshots, and Largest Contentful Paint under a slow phone.
//
// Usage: node page-check.mjs JOB.json      prints {"pages": [...]} as JSON (exit 0; the caller judges)
// JOB: {"pages": [{"name", "url", "headers": {..}, "shots": "target/dir" | null, "lcp": bool,
//                  "burst": {"count": 620, "window_ms": 10000} | null,
//                  "submit": {"field": "passphrase", "value": "…"} | null}]}
// A submit fills the page's form and presses its button, after the page was judged.
// A burst sends `count` requests with the page's headers right before the browser opens it, at
// the start of a fixed window of `window_ms` of the wall clock (a rate limiter's window), with the
// browser already running: what it takes to see a 429 page as a person would.
import { readFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
const job = JSON.parse(await readFile(process.argv[2], "utf8"));

// Chrome DevTools' "Slow 4G" preset (as Lighthouse's mobile throttling): 562.5 ms latency,
// 1.6 Mbit/s x 0.9 down, 750 kbit/s x 0.9 up; and a 4x slower CPU.
const SLOW_4G = { offline: false, latency: 562.5, downloadThroughput: (1.6 * 1024 * 1024 * 0.9) / 8,
                  uploadThroughput: (750 * 1024 * 0.9) / 8 };
const CPU_SLOWDOWN = 4;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});

// Every request the page makes to the page's own origin (the Worker), and every CSP violation
// (a style or image the policy blocked), counted from before the document loads.
async function open(spec, viewport) {
  const context = await browser.newContext({ viewport, extraHTTPHeaders: spec.headers || {} });
  const page = await context.newPage();
  const origin = new URL(spec.url).origin;
  const sameOrigin = [];
  page.on("request", (r) => { if (new URL(r.url()).origin === origin) sameOrigin.push(r.url()); });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const response = await page.goto(spec.url, { waitUntil: "load", timeout: 60000 });
  return { context, page, status: response?.status() ?? 0, sameOrigin };
}

async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return { passes: r.passes.length,
             violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                                     nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) })) };
  });
}

async function lcp(spec) {
  const context = await browser.newContext({ viewport: { width: 360, height: 800 }, isMobile: true,
                                             extraHTTPHeaders: spec.headers || {} });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  await cdp.send("Network.emulateNetworkConditions", SLOW_4G);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: CPU_SLOWDOWN });
  await page.goto(spec.url, { waitUntil: "load", timeout: 120000 });
  const value = await page.evaluate(() => new Promise((resolve) => {
    new PerformanceObserver((list) => {
      const entries = list.getEntries();
      const last = entries[entries.length - 1];
      resolve({ ms: last.startTime, element: last.element ? last.element.tagName.toLowerCase() : null, size: last.size });
    }).observe({ type: "largest-contentful-paint", buffered: true });
  }));
  await context.close();
  return value;
}

async function burst(spec) {
  const { count, window_ms: windowMs } = spec.burst;
  const into = Date.now() % windowMs;
  // Pacing, not synchronisation: the limiter's windows are wall-clock time.
  if (into > windowMs * 0.15) await new Promise((r) => setTimeout(r, windowMs - into + 50));
  const statuses = {};
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const r = await fetch(spec.url, { headers: spec.headers || {} });
      await r.arrayBuffer();
      statuses[r.status] = (statuses[r.status] || 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  return { statuses, ms_into_window: Date.now() % windowMs };
}

// Types `value` into the form's `field` and presses its submit button, as a person would (no
// script of the page's own runs: the page has none), and reports where the browser landed.
async function submit(page, { field, value }) {
  await page.fill(`[name="${field}"]`, value);
  const navigation = page.waitForNavigation({ waitUntil: "load", timeout: 20000 }).catch(() => null);
  await page.click('button[type="submit"]');
  const response = await navigation;
  return { status: response ? response.status() : 0, url: page.url(), title: await page.title(),
           text: await page.evaluate(() => document.body.innerText),
           csp_violations: await page.evaluate(() => window.__csp) };
}

const pages = [];
try {
  for (const spec of job.pages) {
    const out = { name: spec.name };
    if (spec.burst) out.burst = await burst(spec);
    const phone = await open(spec, { width: 360, height: 800 });
    out.status = phone.status;
    out.axe = await axe(phone.page);
    out.text = await phone.page.evaluate(() => document.body.innerText);
    out.title = await phone.page.title();
    out.csp_violations = await phone.page.evaluate(() => window.__csp);
    out.same_origin_requests = [...phone.sameOrigin];
    // Images above the fold load at once; every image reserves its box before it loads.
    out.images = await phone.page.evaluate(() => [...document.images].map((i) => ({
      loading: i.getAttribute("loading"), width: i.getAttribute("width"), height: i.getAttribute("height"),
      srcset: i.getAttribute("srcset"), ok: i.complete && i.naturalWidth > 0 })));
    if (spec.shots) {
      await mkdir(spec.shots, { recursive: true });
      out.shots = [`${spec.shots}/${spec.name}-360x800.png`, `${spec.shots}/${spec.name}-1280x800.png`];
      await phone.page.screenshot({ path: out.shots[0], fullPage: false });
    }
    if (spec.submit) out.submitted = await submit(phone.page, spec.submit);
    await phone.context.close();
    if (spec.shots) {
      const desktop = await open(spec, { width: 1280, height: 800 });
      await desktop.page.screenshot({ path: out.shots[1], fullPage: false });
      await desktop.context.close();
    }
    if (spec.lcp) out.lcp = await lcp(spec);
    pages.push(out);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages }));
