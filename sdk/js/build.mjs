// Builds dist/: callbox.js (ES module, spark-md5 bundled in), callbox.min.js (minified script-tag bundle with
// the global `Callbox`) and callbox.d.ts. `node build.mjs OUTDIR` writes elsewhere (test.sh compares the two).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, process.argv[2] ?? "dist");
mkdirSync(out, { recursive: true });

const common = {
  entryPoints: [resolve(here, "src/callbox.ts")],
  absWorkingDir: here,
  bundle: true,
  target: "es2022",
  legalComments: "inline",
  logLevel: "warning",
};
await build({ ...common, format: "esm", outfile: resolve(out, "callbox.js") });
// Script-tag pages written for the legacy SDK say `new SinchClient(...)`: the bundle defines that global too.
await build({
  ...common,
  format: "iife",
  globalName: "Callbox",
  minify: true,
  footer: { js: "globalThis.SinchClient=globalThis.SinchClient||Callbox.SinchClient;" },
  outfile: resolve(out, "callbox.min.js"),
});
execFileSync(process.execPath, [resolve(here, "node_modules/typescript/bin/tsc"), "-p", resolve(here, "tsconfig.json"), "--outDir", out], {
  stdio: "inherit",
});
