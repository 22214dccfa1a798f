// Reads the Open Graph and Twitter tags of a page as link unfurlers do, with open-graph-scraper
// (npm, pinned in package.json): not our own parsing. Prints the parser's result as JSON.
// Usage: node og-parse.mjs FILE.html      (exit 0 with {"error": ...} when it cannot parse)
import { readFile } from "node:fs/promises";
import ogs from "open-graph-scraper";

const html = await readFile(process.argv[2], "utf8");
try {
  // onlyGetOpenGraphInfo: no fallback to <title> or <img>, so a missing tag shows as missing.
  const { result } = await ogs({ html, onlyGetOpenGraphInfo: true });
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.result?.error ?? e) }));
}
