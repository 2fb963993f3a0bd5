/**
 * Draws the extension's and the tasks' icons (PNG) from simple shapes, so that they can be
 * regenerated without an image editor: `node out/scripts/make-icons.js`. The PNGs are committed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

type RGBA = [number, number, number, number];

class Canvas {
  readonly pixels: Uint8Array;
  constructor(readonly size: number) {
    this.pixels = new Uint8Array(size * size * 4);
  }
  /** Paints with 4×4 supersampling so edges are smooth. */
  fill(inside: (x: number, y: number) => boolean, color: RGBA): void {
    const n = this.size;
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        let hits = 0;
        for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) if (inside((x + (sx + 0.5) / 4) / n, (y + (sy + 0.5) / 4) / n)) hits++;
        if (!hits) continue;
        const a = (color[3] / 255) * (hits / 16);
        const i = (y * n + x) * 4;
        const p = this.pixels;
        const outA = a + (p[i + 3] / 255) * (1 - a);
        for (let c = 0; c < 3; c++) p[i + c] = Math.round((color[c] * a + p[i + c] * (p[i + 3] / 255) * (1 - a)) / (outA || 1));
        p[i + 3] = Math.round(outA * 255);
      }
    }
  }
  png(): Buffer {
    const n = this.size;
    const raw = Buffer.alloc((n * 4 + 1) * n);
    for (let y = 0; y < n; y++) {
      raw[y * (n * 4 + 1)] = 0;
      Buffer.from(this.pixels.subarray(y * n * 4, (y + 1) * n * 4)).copy(raw, y * (n * 4 + 1) + 1);
    }
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(zlib.crc32(body));
      return Buffer.concat([len, body, crc]);
    };
    const header = Buffer.alloc(13);
    header.writeUInt32BE(n, 0);
    header.writeUInt32BE(n, 4);
    header[8] = 8;
    header[9] = 6;
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
  }
}

const roundedSquare = (r: number) => (x: number, y: number) => {
  const dx = Math.max(Math.abs(x - 0.5) - (0.5 - r), 0);
  const dy = Math.max(Math.abs(y - 0.5) - (0.5 - r), 0);
  return dx * dx + dy * dy <= r * r;
};
const ellipse = (cx: number, cy: number, rx: number, ry: number) => (x: number, y: number) => ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
const rect = (x0: number, y0: number, x1: number, y1: number) => (x: number, y: number) => x >= x0 && x <= x1 && y >= y0 && y <= y1;
const union = (...fs: Array<(x: number, y: number) => boolean>) => (x: number, y: number) => fs.some((f) => f(x, y));

/** A database cylinder, the shared motif; `badge` draws the task's own sign in the corner. */
function icon(size: number, background: RGBA, badge?: (c: Canvas) => void): Buffer {
  const c = new Canvas(size);
  c.fill(roundedSquare(0.18), background);
  const white: RGBA = [255, 255, 255, 255];
  const shade: RGBA = [255, 255, 255, 120];
  c.fill(union(rect(0.22, 0.26, 0.62, 0.72), ellipse(0.42, 0.72, 0.2, 0.07)), white);
  c.fill(ellipse(0.42, 0.26, 0.2, 0.07), [230, 236, 245, 255]);
  c.fill((x, y) => ellipse(0.42, 0.42, 0.2, 0.07)(x, y) && y > 0.42, shade);
  c.fill((x, y) => ellipse(0.42, 0.57, 0.2, 0.07)(x, y) && y > 0.57, shade);
  badge?.(c);
  return c.png();
}

const BLUE: RGBA = [0, 120, 212, 255];
const badgeCircle = (c: Canvas, color: RGBA) => c.fill(ellipse(0.72, 0.72, 0.19, 0.19), color);
const triangle = (x: number, y: number) => x >= 0.65 && Math.abs(y - 0.72) <= (0.83 - x) * 0.6;
const arrowDown = union(rect(0.695, 0.6, 0.745, 0.73), (x, y) => y >= 0.72 && y <= 0.84 && Math.abs(x - 0.72) <= (0.84 - y) * 0.9);
const check = (x: number, y: number) => {
  const d1 = Math.abs((y - 0.76) - (x - 0.66)) < 0.035 && x >= 0.62 && x <= 0.7;
  const d2 = Math.abs((y - 0.76) + (x - 0.66) * 1.6) < 0.04 && x >= 0.66 && x <= 0.81;
  return d1 || d2;
};
const box = union(rect(0.62, 0.64, 0.82, 0.82));

const ICONS: Record<string, (size: number) => Buffer> = {
  'images/icon.png': (s) => icon(s, BLUE),
  'tasks/AppServiceWebJobRun/icon.png': (s) => icon(s, BLUE, (c) => { badgeCircle(c, [16, 124, 16, 255]); c.fill(triangle, [255, 255, 255, 255]); }),
  'tasks/AppServiceDownload/icon.png': (s) => icon(s, BLUE, (c) => { badgeCircle(c, [0, 90, 158, 255]); c.fill(arrowDown, [255, 255, 255, 255]); }),
  'tasks/SqliteBackup/icon.png': (s) => icon(s, [68, 90, 110, 255], (c) => { badgeCircle(c, [16, 124, 16, 255]); c.fill(check, [255, 255, 255, 255]); }),
  'tasks/GhostMigrate/icon.png': (s) => icon(s, [21, 33, 42, 255], (c) => { badgeCircle(c, [48, 207, 67, 255]); c.fill(triangle, [21, 33, 42, 255]); }),
  'tasks/SitePackage/icon.png': (s) => icon(s, BLUE, (c) => { badgeCircle(c, [202, 80, 16, 255]); c.fill(box, [255, 255, 255, 255]); }),
  'tasks/AppServiceDatabaseGuard/icon.png': (s) => icon(s, BLUE, (c) => { badgeCircle(c, [168, 0, 0, 255]); c.fill(check, [255, 255, 255, 255]); }),
};

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..');
  const only = process.argv.slice(2);
  for (const [file, draw] of Object.entries(ICONS)) {
    if (only.length && !only.some((o) => file.includes(o))) continue;
    const target = path.join(root, file);
    if (!fs.existsSync(path.dirname(target))) continue;
    fs.writeFileSync(target, draw(file.startsWith('images/') ? 128 : 32));
    console.log(`wrote ${file}`);
  }
}
