// Generates a folder shaped like a Ghost site on App Service, for the packaging benchmark.
// Images are random bytes because real JPEG/PNG/WebP data does not compress either; the text
// is built from code-, style-, markup- and prose-like lines with varied identifiers and numbers,
// so deflate finds about as much redundancy as it does in real JS/CSS/HTML/JSON/markdown.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface SiteSpec {
  dir: string;
  /** Bytes of the site proper (node_modules/ comes on top). */
  totalBytes: number;
  /** Files of the site proper (node_modules/ comes on top). */
  files: number;
  /** Share of totalBytes that is images. */
  imageShare?: number;
  /** Files and bytes of the node_modules/ folder that packaging must leave out. */
  nodeModules?: { files: number; bytes: number };
}

export interface SiteSummary {
  files: number;
  bytes: number;
  imageFiles: number;
  imageBytes: number;
  textFiles: number;
  textBytes: number;
  emptyDirectories: number;
  nodeModulesFiles: number;
  nodeModulesBytes: number;
}

/** Small deterministic PRNG (mulberry32) so two runs build the same text and layout. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

function vocabulary(r: Rand, n: number): string[] {
  const syllables = ['ka', 'lo', 'mi', 'ten', 'ra', 'so', 'vel', 'pre', 'con', 'tor', 'ex', 'ing', 'ate', 'ment', 'ghost', 'post', 'tag', 'mem', 'ber', 'set', 'api', 'url', 'img', 'data', 'node', 'load', 'user', 'page', 'list', 'view'];
  const words = new Set<string>();
  while (words.size < n) {
    let w = '';
    const k = int(r, 1, 3);
    for (let i = 0; i < k; i++) w += pick(r, syllables);
    words.add(w);
  }
  return [...words];
}

type Kind = 'js' | 'css' | 'hbs' | 'json' | 'md';

function line(kind: Kind, r: Rand, words: string[]): string {
  const w = () => pick(r, words);
  const id = () => w() + (r() < 0.5 ? w().charAt(0).toUpperCase() + w().slice(1) : '');
  const n = () => int(r, 0, 2000);
  const sentence = () => {
    const k = int(r, 5, 16);
    const out: string[] = [];
    for (let i = 0; i < k; i++) out.push(w());
    return out.join(' ');
  };
  switch (kind) {
    case 'js':
      return pick(r, [
        () => `const ${id()} = require('${w()}/${w()}');`,
        () => `function ${id()}(${id()}, ${id()}) {`,
        () => `    if (${id()}.${id()} === ${n()}) {`,
        () => `        return ${id()}.${id()}('${w()}', ${n()});`,
        () => `    const ${id()} = await ${id()}.${w()}({${w()}: ${n()}, ${w()}: '${w()}'});`,
        () => `    }`,
        () => `}`,
        () => `// ${sentence()}`,
        () => `module.exports.${id()} = ${id()};`,
        () => `        ${id()}.push(${id()}[${n()}] + ${n()});`,
      ])();
    case 'css':
      return pick(r, [
        () => `.${w()}-${w()} .${w()} {`,
        () => `  margin: ${n() % 64}px ${n() % 64}px;`,
        () => `  color: #${n().toString(16).padStart(3, '0')}${(n() % 4096).toString(16).padStart(3, '0')};`,
        () => `  font-size: ${(n() % 300) / 100}rem;`,
        () => `  transition: ${w()} ${n() % 900}ms ease-in-out;`,
        () => `}`,
      ])();
    case 'hbs':
      return pick(r, [
        () => `<div class="${w()}-${w()} ${w()}">`,
        () => `  <p>${sentence()}</p>`,
        () => `{{#if ${id()}}}`,
        () => `  <a href="/${w()}/${w()}-${n()}/">{{${id()}}}</a>`,
        () => `{{/if}}`,
        () => `</div>`,
        () => `<img src="{{img_url ${w()} size="${pick(r, ['s', 'm', 'l'])}"}}" alt="${sentence()}">`,
      ])();
    case 'json':
      return pick(r, [
        () => `  "${id()}": "${sentence()}",`,
        () => `  "${id()}": ${n()},`,
        () => `  "${id()}": {"${w()}": "${w()}-${n()}", "${w()}": ${r() < 0.5}},`,
        () => `  "${id()}": "${crypto.randomUUID()}",`,
      ])();
    case 'md':
      return pick(r, [
        () => `${sentence()}. ${sentence()}, ${sentence()}.`,
        () => `## ${sentence()}`,
        () => `- ${sentence()}`,
        () => `[${w()} ${w()}](https://example.com/${w()}/${n()})`,
        () => ``,
      ])();
  }
}

/** One few-MiB corpus per kind; files are slices of it at random line boundaries, so no two files are alike. */
function corpus(kind: Kind, r: Rand, words: string[], bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const l = line(kind, r, words) + '\n';
    lines.push(l);
    size += l.length;
  }
  return Buffer.from(lines.join(''), 'utf8');
}

function slice(c: Buffer, r: Rand, size: number): Buffer {
  if (size >= c.length / 2) {
    const parts: Buffer[] = [];
    for (let left = size; left > 0; left -= c.length / 2) parts.push(slice(c, r, Math.min(left, c.length / 2)));
    return Buffer.concat(parts);
  }
  let start = Math.floor(r() * (c.length - size));
  const nl = c.indexOf(10, start);
  if (nl >= 0 && nl + 1 + size <= c.length) start = nl + 1;
  return c.subarray(start, start + size);
}

/** Sizes that sum to total, spread like a real site's (many small, a few large). */
function sizes(r: Rand, count: number, total: number): number[] {
  const weights = Array.from({ length: count }, () => Math.exp(r() * 3.5));
  const sum = weights.reduce((a, b) => a + b, 0);
  const out = weights.map((w) => Math.max(1, Math.floor((w / sum) * total)));
  out[0] += total - out.reduce((a, b) => a + b, 0);
  return out;
}

const TEXT_KINDS: Array<{ kind: Kind; ext: string; folder: (r: Rand, words: string[]) => string }> = [
  { kind: 'js', ext: 'js', folder: (r, w) => `current/core/server/${pick(r, w)}/${pick(r, w)}` },
  { kind: 'js', ext: 'js', folder: (r, w) => `current/core/frontend/${pick(r, w)}` },
  { kind: 'css', ext: 'css', folder: (r, w) => `content/themes/casper/assets/${pick(r, ['css', 'built'])}/${pick(r, w)}` },
  { kind: 'hbs', ext: 'hbs', folder: (r, w) => `content/themes/${pick(r, ['casper', 'source', 'edition'])}/${pick(r, ['partials', 'members', 'post'])}` },
  { kind: 'hbs', ext: 'html', folder: (r, w) => `current/core/built/admin/${pick(r, w)}` },
  { kind: 'json', ext: 'json', folder: (r, w) => `content/data/${pick(r, w)}` },
  { kind: 'md', ext: 'md', folder: (r, w) => `content/docs/${pick(r, w)}` },
];

const IMAGE_EXTS = ['jpg', 'jpg', 'jpg', 'jpeg', 'png', 'png', 'webp', 'gif'];

async function writeFile(dir: string, rel: string, data: Buffer): Promise<void> {
  const file = path.join(dir, rel);
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await fs.promises.writeFile(file, data);
}

/** Builds the site under spec.dir (which must not exist yet). */
export async function generateSite(spec: SiteSpec): Promise<SiteSummary> {
  const r = prng(20240601);
  const words = vocabulary(r, 3000);
  const imageShare = spec.imageShare ?? 0.8;
  const imageFiles = Math.max(1, Math.round(spec.files * 0.3));
  const textFiles = Math.max(1, spec.files - imageFiles);
  const imageBytes = Math.round(spec.totalBytes * imageShare);
  const textBytes = spec.totalBytes - imageBytes;
  await fs.promises.mkdir(spec.dir, { recursive: false });

  const corpora = new Map<Kind, Buffer>();
  for (const k of ['js', 'css', 'hbs', 'json', 'md'] as Kind[]) corpora.set(k, corpus(k, r, words, 4 << 20));

  const used = new Set<string>();
  const unique = (rel: string): string => {
    let name = rel;
    for (let i = 1; used.has(name); i++) name = rel.replace(/(\.[^./]+)$/, `-${i}$1`);
    used.add(name);
    return name;
  };

  // Random image bytes come from one pool (refilled now and then) rather than fresh per file:
  // they are just as incompressible and the generator stays fast enough to keep the run short.
  const pool = crypto.randomBytes(32 << 20);
  const imageSizes = sizes(r, imageFiles, imageBytes);
  for (let i = 0; i < imageFiles; i++) {
    if (i % 500 === 499) crypto.randomFillSync(pool);
    const size = imageSizes[i];
    const year = int(r, 2018, 2025);
    const month = String(int(r, 1, 12)).padStart(2, '0');
    const sized = r() < 0.4 ? `size/w${pick(r, [300, 600, 1000, 2000])}/` : '';
    const rel = unique(`content/images/${sized}${year}/${month}/${pick(r, words)}-${pick(r, words)}.${pick(r, IMAGE_EXTS)}`);
    // Chunks of the pool at random offsets, so files do not repeat each other byte for byte.
    const data = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; ) {
      const n = Math.min(size - off, pool.length - 1, 1 << 20);
      const start = Math.floor(r() * (pool.length - n));
      pool.copy(data, off, start, start + n);
      off += n;
    }
    await writeFile(spec.dir, rel, data);
  }

  const textSizes = sizes(r, textFiles, textBytes);
  for (let i = 0; i < textFiles; i++) {
    const t = pick(r, TEXT_KINDS);
    const rel = unique(`${t.folder(r, words)}/${pick(r, words)}-${pick(r, words)}.${t.ext}`);
    await writeFile(spec.dir, rel, slice(corpora.get(t.kind)!, r, textSizes[i]));
  }

  const emptyDirs = ['content/logs', 'content/adapters/storage', 'content/public'];
  for (const d of emptyDirs) await fs.promises.mkdir(path.join(spec.dir, d), { recursive: true });

  const nm = spec.nodeModules ?? { files: 1500, bytes: 30 << 20 };
  const nmSizes = sizes(r, nm.files, nm.bytes);
  for (let i = 0; i < nm.files; i++) {
    const rel = unique(`node_modules/${pick(r, words)}/${pick(r, ['lib', 'dist', 'src'])}/${pick(r, words)}.js`);
    await writeFile(spec.dir, rel, slice(corpora.get('js')!, r, nmSizes[i]));
  }

  return {
    files: imageFiles + textFiles,
    bytes: imageBytes + textBytes,
    imageFiles,
    imageBytes,
    textFiles,
    textBytes,
    emptyDirectories: emptyDirs.length,
    nodeModulesFiles: nm.files,
    nodeModulesBytes: nm.bytes,
  };
}
