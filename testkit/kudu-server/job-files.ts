// What a triggered WebJob is on disk: its folder, the script Kudu would pick, its settings.job,
// and the copy of its binaries Kudu runs from. Follows Kudu's JobsManagerBase / BaseJobRunner.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ScriptHost {
  /** The .NET class name Kudu logs in "Run script ... with script host - '...'". */
  className: string;
  extensions: string[];
  /** Executable and argv for `scriptFile` (a name relative to the working folder). */
  command(scriptFile: string, args: string[], nodePath: string): { file: string; argv: string[]; verbatim?: boolean };
}

/** Whether this machine has the interpreter a host needs (Kudu skips a host whose HostPath is empty). */
type Availability = () => boolean;
const onWindows: Availability = () => process.platform === 'win32';
const always: Availability = () => true;
/** This server does not run these: their hosts count as missing, so their files are never chosen. */
const notHere: Availability = () => false;
type KuduHost = ScriptHost & { available: Availability };

const WINDOWS_HOST: KuduHost = {
  className: 'WindowsScriptHost',
  extensions: ['.cmd', '.bat', '.exe'],
  available: onWindows,
  command: (scriptFile, args) => ({
    file: 'cmd.exe',
    argv: ['/d', '/s', '/c', `""${scriptFile}"${args.length ? ' ' + args.map(a => (/[\s"]/.test(a) ? `"${a.replace(/"/g, '""')}"` : a)).join(' ') : ''}"`],
    verbatim: true,
  }),
};

const POWERSHELL_HOST: KuduHost = {
  className: 'PowerShellScriptHost',
  extensions: ['.ps1'],
  available: notHere,
  command: (scriptFile, args) => ({ file: 'PowerShell.exe', argv: ['-ExecutionPolicy', 'RemoteSigned', '-File', scriptFile, ...args] }),
};

const BASH_HOST: KuduHost = {
  className: 'BashScriptHost',
  extensions: ['.sh'],
  available: always,
  command: (scriptFile, args) => ({ file: 'bash', argv: [scriptFile, ...args] }),
};

const unsupported = (className: string, extensions: string[]): KuduHost => ({
  className,
  extensions,
  available: notHere,
  command: () => {
    throw new Error(`${className} is not available on this server`);
  },
});

const NODE_HOST: KuduHost = {
  className: 'NodeScriptHost',
  extensions: ['.js'],
  available: always,
  command: (scriptFile, args, nodePath) => ({ file: nodePath, argv: [scriptFile, ...args] }),
};

/**
 * Kudu's ScriptHosts in its order (JobsManagerBase): Windows (.cmd .bat .exe), PowerShell (.ps1),
 * Bash (.sh), Python (.py), PHP (.php), Node (.js), F# (.fsx) — so run.cmd beats run.sh beats
 * run.js. Kudu skips a host whose interpreter is missing; here cmd exists on Windows only, bash and
 * node everywhere, and the others are never run (their files are never chosen).
 */
const ALL_HOSTS = [
  WINDOWS_HOST,
  POWERSHELL_HOST,
  BASH_HOST,
  unsupported('PythonScriptHost', ['.py']),
  unsupported('PhpScriptHost', ['.php']),
  NODE_HOST,
  unsupported('FSharpScriptHost', ['.fsx']),
];

export const SCRIPT_HOSTS: ScriptHost[] = ALL_HOSTS.filter(h => h.available());

export const NO_RUNNABLE_SCRIPT = 'No runnable script file was found.';

export interface JobInfo {
  name: string;
  /** `site/wwwroot/App_Data/jobs/triggered/<name>` */
  dir: string;
  /** Where the script was found: `dir`, or its only sub-folder (recursively) when it holds nothing else. */
  scriptDir: string;
  scriptFile: string;
  /** Script path relative to `dir`, as in the job's `run_command`. */
  runCommand: string;
  host: ScriptHost;
  settings: Record<string, unknown>;
}

function sortedNames(dir: string): string[] {
  return fs.readdirSync(dir).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0));
}

/** GetJobScriptDirectory: a folder with a single sub-folder and no files stands for that sub-folder. */
export function scriptDirectoryOf(jobDir: string): string {
  const entries = fs.readdirSync(jobDir, { withFileTypes: true });
  if (entries.length === 1 && entries[0].isDirectory()) return scriptDirectoryOf(path.join(jobDir, entries[0].name));
  return jobDir;
}

/**
 * FindCommandToRun: per host and extension, `run.<ext>` wins at once; otherwise the first file
 * with a supported extension (in host order) is the fallback — so a lone `backup.js` runs too.
 */
export function findScript(scriptDir: string): { file: string; host: ScriptHost } | undefined {
  const files = sortedNames(scriptDir).filter(n => {
    try {
      return fs.statSync(path.join(scriptDir, n)).isFile();
    } catch {
      return false;
    }
  });
  let secondary: { file: string; host: ScriptHost } | undefined;
  for (const host of SCRIPT_HOSTS) {
    for (const ext of host.extensions) {
      const matching = files.filter(f => path.extname(f).toLowerCase() === ext);
      if (matching.length === 0) continue;
      const primary = matching.find(f => f.toLowerCase() === 'run' + ext);
      if (primary) return { file: path.join(scriptDir, primary), host };
      secondary ??= { file: path.join(scriptDir, matching[0]), host };
    }
  }
  return secondary;
}

export function readJobSettings(scriptDir: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(scriptDir, 'settings.job'), 'utf8'));
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function writeJobSettings(jobDir: string, settings: unknown): void {
  fs.writeFileSync(path.join(scriptDirectoryOf(jobDir), 'settings.job'), JSON.stringify(settings));
}

/** A valid single path segment for a job name, or undefined. */
export function checkJobName(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..' || /[\\/\0]/.test(name)) return undefined;
  return name;
}

export type BuiltJob = { job: JobInfo; error?: undefined } | { job?: undefined; error: string };

/** BuildJob: undefined when the folder does not exist; an error when it holds nothing runnable. */
export function buildJob(jobsRoot: string, name: string): BuiltJob | undefined {
  const dir = path.join(jobsRoot, name);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return undefined;
  try {
    const scriptDir = scriptDirectoryOf(dir);
    const found = findScript(scriptDir);
    if (!found) return { error: NO_RUNNABLE_SCRIPT };
    return {
      job: {
        name, dir, scriptDir, scriptFile: found.file, host: found.host,
        runCommand: path.relative(dir, found.file),
        settings: readJobSettings(scriptDir),
      },
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Relative path -> mtime (ns) of every file under `dir`. */
function fileMap(dir: string): Map<string, bigint> {
  const map = new Map<string, bigint>();
  const walk = (sub: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? path.join(sub, entry.name) : entry.name;
      if (entry.isDirectory()) walk(rel);
      else map.set(rel, fs.statSync(path.join(dir, rel), { bigint: true }).mtimeNs);
    }
  };
  walk('');
  return map;
}

/** Path.GetRandomFileName(): 8.3 lower-case letters and digits. */
function randomFileName(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz012345';
  const bytes = randomBytes(11);
  const chars = [...bytes].map(b => alphabet[b % alphabet.length]).join('');
  return `${chars.slice(0, 8)}.${chars.slice(8)}`;
}

interface CachedBinaries { dir: string; sourceMap: Map<string, bigint> }

/**
 * CacheJobBinaries: Kudu runs a job from a copy under %TEMP%\jobs\triggered\<name>\<random>,
 * reused while the source is unchanged (same file times). Node jobs default to running in
 * place instead (is_in_place defaults to true for NodeScriptHost).
 */
export class BinariesCache {
  private cached = new Map<string, CachedBinaries>();

  constructor(private readonly tempRoot: string) {}

  prepare(job: JobInfo, logInfo: (message: string) => void): string {
    const source = job.scriptDir;
    const sourceMap = fileMap(source);
    const previous = this.cached.get(job.name);
    if (previous && fs.existsSync(previous.dir)) {
      if (!this.changed(sourceMap, fileMap(previous.dir), previous.sourceMap, logInfo)) return previous.dir;
    }
    const jobTemp = path.join(this.tempRoot, 'jobs', 'triggered', job.name);
    fs.rmSync(jobTemp, { recursive: true, force: true });
    const dir = path.join(jobTemp, randomFileName());
    // File.Copy keeps LastWriteTime, which the change detection above relies on.
    fs.cpSync(source, dir, { recursive: true, preserveTimestamps: true });
    this.cached.set(job.name, { dir, sourceMap });
    return dir;
  }

  forget(name: string): void {
    this.cached.delete(name);
  }

  private changed(source: Map<string, bigint>, working: Map<string, bigint>, cached: Map<string, bigint>, logInfo: (m: string) => void): boolean {
    for (const [file, mtime] of source) {
      const copy = working.get(file);
      if (copy === undefined) {
        logInfo(`Job directory change detected: Job file '${file}' exists in source directory but not in working directory.`);
        return true;
      }
      // fs.cp preserves times to the millisecond only; compare at that grain.
      if (copy / 1000000n !== mtime / 1000000n) {
        logInfo(`Job directory change detected: Job file '${file}' timestamp differs between source and working directories.`);
        return true;
      }
    }
    for (const file of cached.keys()) {
      if (!source.has(file)) {
        logInfo(`Job directory change detected: Job file '${file}' has been deleted.`);
        return true;
      }
    }
    return false;
  }
}

export function newJobDirectory(jobsRoot: string, name: string): string {
  const dir = path.join(jobsRoot, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
