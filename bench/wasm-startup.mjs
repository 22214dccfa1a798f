// Worker start-up proxy for scripts/bench: compile + instantiate the Worker's wasm in V8 (the
// engine workerd embeds; here Debian's Chromium, driven by playwright-core, because the module
// uses Wasm exception handling that Node 20's V8 lacks). Median of N fresh runs. Imports are
// stubs: instantiation runs no JavaScript and the module has no start function.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [path, runs = "7"] = process.argv.slice(2);
const base64 = readFileSync(path).toString("base64");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  const times = await page.evaluate(async ({ base64, runs }) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const module = await WebAssembly.compile(bytes);
      const imports = {};
      for (const imp of WebAssembly.Module.imports(module)) {
        imports[imp.module] ??= {};
        if (imp.kind === "function") imports[imp.module][imp.name] = () => { throw new Error("stub"); };
        else if (imp.kind === "memory") imports[imp.module][imp.name] = new WebAssembly.Memory({ initial: 1 });
        else if (imp.kind === "table") imports[imp.module][imp.name] = new WebAssembly.Table({ initial: 0, element: "externref" });
        else if (imp.kind === "global") imports[imp.module][imp.name] = new WebAssembly.Global({ value: "i32", mutable: true }, 0);
        else if (imp.kind === "tag") imports[imp.module][imp.name] = WebAssembly.JSTag ?? new WebAssembly.Tag({ parameters: ["externref"] });
      }
      await WebAssembly.instantiate(module, imports);
      times.push(performance.now() - t0);
    }
    return times;
  }, { base64, runs: Number(runs) });
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ engine: "chromium", runs: times.length, median_ms: times[Math.floor(times.length / 2)], min_ms: times[0], max_ms: times[times.length - 1] }));
} finally {
  await browser.close();
}
