// Builds the storefront into an output folder (default ../gateway/assets):
//   app.js      src/main.ts and its dependencies, one minified IIFE (esbuild),
//               headed by the list of bundled packages and their licenses
//   app.css     src/app.css, copied
//   index.html  src/index.html, copied
// Deterministic: the same sources and node_modules give byte-identical files
// (no timestamps, no absolute paths, no source map; legal comments at the end).
// Usage: node build.mjs [--outdir DIR]
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf('--outdir');
const outdir = resolve(at >= 0 ? args[at + 1] : join(here, '..', 'gateway', 'assets'));
const readJson = async (path) => JSON.parse(await readFile(path, 'utf8'));
const { name, version } = await readJson(join(here, 'package.json'));

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/main.ts'],
  outfile: 'app.js',
  write: false,
  metafile: true,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome100', 'firefox100', 'safari15', 'es2020'],
  // zone.js (the context manager) follows only promises made through the global
  // Promise, which native async/await bypasses: lower them to generators so the
  // click's context survives every await.
  supported: { 'async-await': false, 'async-generator': false, 'for-await': false },
  minify: true,
  legalComments: 'eof',
  sourcemap: false,
  // ASCII output (non-ASCII escaped): the script decodes the same whatever
  // charset it is served with.
  charset: 'ascii',
  define: { STOREFRONT_VERSION: JSON.stringify(version) },
  logLevel: 'warning',
});

// The packages whose code is in the bundle (paths in the metafile are relative
// to absWorkingDir), named with their version and license at the top of app.js.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (match) packages.add(match[1]);
}
const notices = [];
for (const pkg of [...packages].sort()) {
  const meta = await readJson(join(here, 'node_modules', pkg, 'package.json'));
  notices.push(` *   ${meta.name}@${meta.version} (${meta.license})`);
}
const banner = [
  `/* ${name} ${version}: built from web/ by scripts/build-web; do not edit.`,
  ' * Bundled packages:',
  ...notices,
  ' */',
  '',
].join('\n');

await mkdir(outdir, { recursive: true });
const [bundle] = result.outputFiles;
await writeFile(join(outdir, 'app.js'), banner + bundle.text);
for (const file of ['index.html', 'app.css']) {
  await copyFile(join(here, 'src', file), join(outdir, file));
}
for (const file of ['index.html', 'app.css', 'app.js']) {
  const bytes = await readFile(join(outdir, file));
  const gzipped = gzipSync(bytes, { level: 9 }).length;
  console.log(`${file.padEnd(10)} ${String(bytes.length).padStart(7)} bytes (${gzipped} gzipped)`);
}
