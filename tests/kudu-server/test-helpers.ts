// Shared bits of the Kudu server self-tests: plain HTTP against a real server on a random port.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as yauzl from 'yauzl';
import * as yazl from 'yazl';
import { KuduServer, KuduServerOptions, startKuduServer } from '../../testkit/kudu-server/server';

export const AUTH = 'Basic ' + Buffer.from('user:pass').toString('base64');

export interface TestServer {
  kudu: KuduServer;
  home: string;
}

/** A server on a fresh temporary %HOME%; pair with stopTestServer in afterEach. */
export async function startTestServer(options: Partial<KuduServerOptions> = {}): Promise<TestServer> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kudu-home-'));
  const kudu = await startKuduServer({ home, instanceId: 'abc123', ...options });
  return { kudu, home };
}

export async function stopTestServer(server: TestServer | undefined): Promise<void> {
  if (!server) return;
  await server.kudu.close();
  fs.rmSync(server.home, { recursive: true, force: true });
}

/** fetch with the default credentials; never follows redirects, so 307s stay visible. */
export function api(kudu: KuduServer, urlPath: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has('authorization')) headers.set('authorization', AUTH);
  return fetch(new URL(urlPath.replace(/^\//, ''), kudu.url), { redirect: 'manual', ...init, headers });
}

export function writeFile(home: string, relPath: string, content: string | Buffer): string {
  const full = path.join(home, relPath);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, content);
  return full;
}

export function zipBuffer(files: Record<string, string | Buffer>, emptyDirs: string[] = []): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(files)) zip.addBuffer(Buffer.from(content), name);
  for (const dir of emptyDirs) zip.addEmptyDirectory(dir);
  zip.end();
  return streamToBuffer(zip.outputStream);
}

async function streamToBuffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface ZipEntryInfo {
  name: string;
  compressionMethod: number;
  mtime: Date;
  data: Buffer;
}

export function readZip(buffer: Buffer): Promise<ZipEntryInfo[]> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buffer, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const entries: ZipEntryInfo[] = [];
      zip.on('error', reject);
      zip.on('end', () => resolve(entries));
      zip.on('entry', (entry: yauzl.Entry) => {
        const info = { name: entry.fileName, compressionMethod: entry.compressionMethod, mtime: entry.getLastModDate() };
        if (entry.fileName.endsWith('/')) {
          entries.push({ ...info, data: Buffer.alloc(0) });
          zip.readEntry();
          return;
        }
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          streamToBuffer(stream).then(data => {
            entries.push({ ...info, data });
            zip.readEntry();
          }, reject);
        });
      });
      zip.readEntry();
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

/** Poll until `probe` returns something other than undefined; fail after timeoutMs. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export interface RawResponse {
  status?: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the connection broke (reset, premature close). */
  error?: NodeJS.ErrnoException;
  /** The socket's own error: `read ECONNRESET` means a TCP RST arrived (a FIN gives none). */
  socketError?: NodeJS.ErrnoException;
  complete: boolean;
}

/** A bare http.request that reports exactly what arrived, including broken connections. */
export function rawRequest(url: string, options: http.RequestOptions = {}, body?: Buffer): Promise<RawResponse> {
  return new Promise(resolve => {
    const chunks: Buffer[] = [];
    const result: RawResponse = { headers: {}, body: Buffer.alloc(0), complete: false };
    let settled = false;
    const done = (error?: Error): void => {
      if (settled) return;
      settled = true;
      result.body = Buffer.concat(chunks);
      if (error) result.error = error as NodeJS.ErrnoException;
      resolve(result);
    };
    const req = http.request(url, { agent: false, ...options, headers: { authorization: AUTH, ...options.headers } }, res => {
      result.status = res.statusCode;
      result.headers = res.headers;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        result.complete = res.complete;
        done();
      });
      res.on('aborted', () => done(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
      res.on('error', e => done(e));
      res.on('close', () => done(res.complete ? undefined : Object.assign(new Error('premature close'), { code: 'ERR_PREMATURE_CLOSE' })));
    });
    req.on('socket', socket => socket.on('error', e => (result.socketError = e as NodeJS.ErrnoException)));
    req.on('error', e => done(e));
    req.end(body);
  });
}

export async function runJob(kudu: KuduServer, name: string, query = '', userAgent = 'kudu-test/1.0'): Promise<{ runId: string; location: string }> {
  const res = await api(kudu, `api/triggeredwebjobs/${name}/run${query}`, { method: 'POST', headers: { 'user-agent': userAgent } });
  if (res.status !== 202) throw new Error(`run ${name}: HTTP ${res.status} ${await res.text()}`);
  const location = res.headers.get('location')!;
  return { runId: location.split('/').pop()!, location };
}

export const TERMINAL = ['Success', 'Failed', 'Aborted', 'Stopped'];

export async function waitForRunEnd(kudu: KuduServer, name: string, runId: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  return waitFor(`run ${name}/${runId} to end`, timeoutMs, async () => {
    const run = (await (await api(kudu, `api/triggeredwebjobs/${name}/history/${runId}`)).json()) as Record<string, unknown>;
    return TERMINAL.includes(run.status as string) ? run : undefined;
  });
}

export async function uploadJob(kudu: KuduServer, name: string, files: Record<string, string>): Promise<Response> {
  return api(kudu, `api/triggeredwebjobs/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/zip', 'content-disposition': 'attachment; filename=job.zip' },
    body: await zipBuffer(files),
  });
}

export function outputLog(home: string, name: string, runId: string): string {
  try {
    return fs.readFileSync(path.join(home, 'data', 'jobs', 'triggered', name, runId, 'output_log.txt'), 'utf8');
  } catch {
    return '';
  }
}
