// Loads a page in Debian's headless Chromium and prints, as JSON, every Content-Security-Policy
// violation it reports (securitypolicyviolation events and console errors), plus failed requests.
// Usage: node csp-check.mjs URL        (exit 0; the caller judges the list)
import { chromium } from "playwright-core";

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const violations = [];
  const failed = [];
  await page.exposeFunction("__reportViolation", (v) => violations.push(v));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI}`));
  });
  page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });
  page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  const response = await page.goto(url, { waitUntil: "load", timeout: 30000 });
  await page.waitForTimeout(300);
  const images = await page.evaluate(() => [...document.images].map((i) => ({ src: i.currentSrc, ok: i.complete && i.naturalWidth > 0 })));
  console.log(JSON.stringify({ status: response?.status() ?? 0, violations, failed, images }));
} finally {
  await browser.close();
}
