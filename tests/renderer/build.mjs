// Bundles src/render.jsx (the Smart Forms renderer and its React / MUI dependencies) into a
// static page: node build.mjs OUTDIR -> OUTDIR/index.html, render.js, render.css, fonts.
// tests/test_renderer.py builds it into a temporary folder on each run, so it is never stale.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const outdir = process.argv[2] ?? "../../artifacts/renderer";
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: ["src/render.jsx"],
  bundle: true,
  format: "iife", // a classic script: the page loads from file:// where modules are refused
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file" },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "error",
  outdir,
});
writeFileSync(
  join(outdir, "index.html"),
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Smart Forms render check</title>' +
    '<link rel="stylesheet" href="render.css"></head><body><div id="form"></div>' +
    '<script src="render.js"></script></body></html>\n',
);
