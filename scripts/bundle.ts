/**
 * One JavaScript file per entry point (a task, the backup WebJob), made with esbuild from the
 * compiled output. Native modules cannot be bundled: they are copied beside the bundle with only
 * the files that run, and, where asked, only the prebuilt binaries of the platforms that matter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import * as ts from 'typescript';

export const ROOT = path.resolve(__dirname, '..', '..');

/** Native modules stay outside the bundle, and what of them is copied. */
const NATIVE: Record<string, string[]> = {
  'better-sqlite3': ['package.json', 'LICENSE', 'lib', 'prebuilds'],
};

export interface BundleOptions {
  /** Compiled entry, e.g. out/tasks/SitePackage/index.js. */
  entry: string;
  outfile: string;
  /** Code run before anything else in the bundle (e.g. a Node version check). */
  banner?: string;
  /** Keep only these prebuilt binaries (`win32-x64`, `linux-x64`, ...); default all. */
  prebuilds?: string[];
}

/** Bundles `entry`; returns the native modules it needed, which now sit in node_modules beside it. */
export async function bundle(options: BundleOptions): Promise<string[]> {
  const result = await esbuild.build({
    entryPoints: [options.entry],
    outfile: options.outfile,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    external: Object.keys(NATIVE),
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
    banner: options.banner ? { js: options.banner } : undefined,
  });
  const used = new Set<string>();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) if (imp.external && NATIVE[imp.path]) used.add(imp.path);
  }
  const into = path.dirname(options.outfile);
  for (const pkg of used) {
    const from = path.join(ROOT, 'node_modules', pkg);
    const to = path.join(into, 'node_modules', pkg);
    for (const entry of NATIVE[pkg]) {
      if (!fs.existsSync(path.join(from, entry))) continue;
      fs.cpSync(path.join(from, entry), path.join(to, entry), {
        recursive: true,
        filter: (src) => !options.prebuilds || !src.endsWith('.node') || options.prebuilds.includes(path.basename(src, '.node')),
      });
    }
  }
  return [...used];
}

/**
 * Compiles one self-contained TypeScript file (node built-ins only) to ES5 for a Node that may be
 * old (the WebJob's launcher runs on whatever node is on the worker's PATH), and checks that the
 * result holds no syntax newer than ES5: esbuild would have to lower it for an ES5 target.
 */
export async function compileEs5(source: string, outfile: string): Promise<void> {
  const output = ts.transpileModule(fs.readFileSync(source, 'utf8'), {
    fileName: path.basename(source),
    reportDiagnostics: true,
    compilerOptions: { target: ts.ScriptTarget.ES5, module: ts.ModuleKind.CommonJS, esModuleInterop: false, importHelpers: false, removeComments: false },
  });
  const problems = (output.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (problems.length) throw new Error(`${source} does not compile to ES5: ${problems.join('; ')}`);
  await assertEs5(output.outputText, source);
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  fs.writeFileSync(outfile, output.outputText);
}

/** Throws when `code` uses syntax newer than ES5 (or helpers TypeScript adds for it). */
export async function assertEs5(code: string, name: string): Promise<void> {
  let es5: string;
  try {
    es5 = (await esbuild.transform(code, { loader: 'js', target: 'es5', logLevel: 'silent' })).code;
  } catch (err) {
    throw new Error(`${name} is not ES5: ${(err as Error).message}`);
  }
  // The same code printed for the newest target, except that ES5's `{ a: a }` stays as written.
  const modern = (await esbuild.transform(code, { loader: 'js', target: 'esnext', supported: { 'object-extensions': false }, logLevel: 'silent' })).code;
  if (es5 !== modern) throw new Error(`${name} is not ES5: esbuild had to rewrite some of its syntax for an ES5 target.`);
  const helper = /\b__(assign|spreadArray|awaiter|generator|extends|read|values|rest)\b/.exec(code);
  if (helper) throw new Error(`${name} needs TypeScript's ${helper[0]} helper: write it without that syntax (old Nodes lack what the helper stands for).`);
}
