/**
 * One JavaScript file per entry point (a task, the backup WebJob), made with esbuild from the
 * compiled output. Native modules cannot be bundled: they are copied beside the bundle with only
 * the files that run, and, where asked, only the prebuilt binaries of the platforms that matter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';

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
