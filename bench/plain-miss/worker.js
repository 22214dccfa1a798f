// The plain JavaScript miss for scripts/bench (issue 31, item 2): GET /s/:token read the way a
// JavaScript Worker would, with no cache, no protection and no checks beyond the token's shape.
// `pg` over the HYPERDRIVE binding (the same local Hyperdrive the edge Worker reads through), ONE
// simple-protocol round trip (`client.query` with a plain text query and no values: no prepared
// statement), the same `public_share_page` function, and a page of the same content (title, child,
// moments with their dates, texts and images, the link preview's tags, the same stylesheet) from
// template literals. The connection is opened per request, as the edge Worker's is. scripts/bench
// copies templates/share.css next to this file before starting it.
import { Client } from "pg";
import stylesheet from "./share.css";

const WORDS = {
  "pt-BR": {
    shared: "momentos compartilhados",
    none: "Nenhum momento foi compartilhado ainda.",
    photoOf: "Foto de",
    note: "Página privada compartilhada por link. Não indexada por buscadores.",
    notFound: "Link não encontrado",
    months: ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro"],
  },
  en: {
    shared: "shared moments",
    none: "No moments have been shared yet.",
    photoOf: "Photo of",
    note: "Private page shared by link. Not indexed by search engines.",
    notFound: "Link not found",
    months: ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"],
  },
};

const escape = (text) =>
  String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function date(iso, lang) {
  const [y, m, d] = (iso || "").split("-").map(Number);
  if (!y || !m || !d || m > 12) return iso;
  const month = WORDS[lang].months[m - 1];
  return lang === "en" ? `${month} ${d}, ${y}` : `${d} de ${month} de ${y}`;
}

function shorten(text, max) {
  if (!text || text.length <= max) return [text || "", false];
  const cut = text.slice(0, max);
  const space = cut.lastIndexOf(" ");
  return [`${(space > max - 80 ? cut.slice(0, space) : cut).trimEnd()}…`, true];
}

function image(media, origin, first) {
  const previews = media.previews
    .filter((p) => !p.purpose && p.width > 0)
    .sort((a, b) => a.width - b.width)
    .slice(0, 3);
  if (previews.length === 0) return "";
  const src = `${origin}/${previews[previews.length - 1].key}`;
  const srcset = previews.map((p) => `${origin}/${p.key} ${p.width}w`).join(", ");
  const loading = first ? ` fetchpriority="high"` : ` loading="lazy"`;
  return `<figure><img src="${escape(src)}" srcset="${escape(srcset)}" sizes="(max-width: 720px) 100vw, 720px" width="${media.width}" height="${media.height}" alt="${escape(media.alt)}"${loading} decoding="async"></figure>\n`;
}

function render(page, lang, url, origin) {
  const w = WORDS[lang];
  const title = page.title || page.child_name;
  const description = `${page.child_name}: ${page.moments.length} ${w.shared}`;
  let og = null;
  for (const m of page.moments)
    for (const media of m.media || [])
      for (const p of media.previews || []) if (!og && p.purpose === "og") og = { ...p, alt: media.alt };
  let first = true;
  const moments = page.moments
    .slice()
    .sort((a, b) => (a.occurred_on < b.occurred_on ? -1 : a.occurred_on > b.occurred_on ? 1 : 0))
    .slice(0, 24)
    .map((m, i) => {
      const [body, cut] = shorten(m.body, 2000);
      const images = (m.media || []).slice(0, 3).map((media) => {
        const html = image(media, origin, first);
        if (html) first = false;
        return html;
      });
      const paragraphs = body
        .split(/\n\s*\n/)
        .filter((p) => p.trim())
        .map((p) => `<p>${escape(p)}</p>\n`);
      const more = cut ? `<p class="more"><a href="?moment=${i + 1}">…</a></p>\n` : "";
      return `<section class="moment" aria-labelledby="m${i + 1}">
<h2 id="m${i + 1}">${escape(m.title)}</h2>
<p class="date"><time datetime="${escape(m.occurred_on)}">${escape(date(m.occurred_on, lang))}</time></p>
${images.join("")}${paragraphs.join("")}${more}</section>
`;
    })
    .join("");
  const ogTags = og
    ? `<meta property="og:image" content="${escape(`${origin}/${og.key}`)}">
<meta property="og:image:width" content="${og.width}">
<meta property="og:image:height" content="${og.height ?? ""}">
<meta property="og:image:alt" content="${escape(og.alt)}">
`
    : "";
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer">
<meta name="description" content="${escape(description)}">
<meta property="og:type" content="website">
<meta property="og:url" content="${escape(url)}">
<meta property="og:site_name" content="Baby Book">
<meta property="og:title" content="${escape(title)}">
<meta property="og:description" content="${escape(description)}">
${ogTags}<meta name="twitter:card" content="summary_large_image">
<title>${escape(title)} · Baby Book</title>
<style>${stylesheet}</style>
</head>
<body>
<header class="site"><p class="brand">Baby Book</p></header>
<main id="conteudo">
<article class="book" aria-labelledby="titulo">
<h1 id="titulo">${escape(title)}</h1>
<p class="summary">${escape(description)}</p>
${page.moments.length ? "" : `<p class="empty">${w.none}</p>`}${moments}</article>
</main>
<footer class="site"><p>${w.note}</p></footer>
</body>
</html>
`;
}

const HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "private, no-store",
  "x-robots-tag": "noindex",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
};

function notFound(lang) {
  return new Response(`<!doctype html><html lang="${lang}"><title>${WORDS[lang].notFound}</title><h1>${WORDS[lang].notFound}</h1></html>`, {
    status: 404,
    headers: HEADERS,
  });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const lang = /^en\b/i.test(request.headers.get("accept-language") || "") ? "en" : "pt-BR";
    if (url.pathname === "/") return new Response("ok");
    const match = /^\/s\/([A-Za-z0-9_-]{22})$/.exec(url.pathname);
    if (!match) return notFound(lang);
    // The token's 16 bytes; the database keeps only their SHA-256.
    const bytes = Uint8Array.from(atob(match[1].replace(/-/g, "+").replace(/_/g, "/") + "=="), (c) => c.charCodeAt(0));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    const client = new Client({ connectionString: env.HYPERDRIVE.connectionString });
    await client.connect();
    let result;
    try {
      // No values: pg sends a simple-protocol Query message, one round trip. The argument is hex
      // digits of a hash, never text from the request.
      result = await client.query(`SELECT public_share_page('\\x${hex}'::bytea) AS page`);
    } finally {
      ctx.waitUntil(client.end());
    }
    const text = result.rows[0]?.page;
    if (!text) return notFound(lang);
    const page = JSON.parse(text);
    return new Response(render(page, lang, url.href, env.MEDIA_ORIGIN), { status: 200, headers: HEADERS });
  },
};
