/**
 * The demo's world: an App Service home with a live Ghost-like blog (a real SQLite database made
 * by the fixture Ghost's real knex-migrator at an older version, and images), and the build's
 * checkout of the newer Ghost whose migrations the pipeline will run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSite, prepareDatabase } from '../testkit/harness/ghost-site';

export interface DemoWorld {
  root: string;
  /** %HOME% of the App Service, served by the Kudu-compatible server. */
  home: string;
  /** The live database the blog writes. */
  liveDb: string;
  /** The build's working directory: the new Ghost version's checkout (node_modules linked). */
  build: string;
  images: { files: number; bytes: number };
  cleanup(): void;
}

/** Ghost keeps images by year and month, and resized copies under size/w600/... */
function writeImages(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const month of ['2026/08', '2026/09', '2026/10', '2026/11']) {
    for (let i = 1; i <= 40; i++) {
      const data = randomBytes(8_000 + ((i * 7919) % 60_000));
      for (const where of [month, `size/w600/${month}`]) {
        const file = path.join(dir, ...where.split('/'), `photo-${i}.jpg`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, where.startsWith('size') ? data.subarray(0, data.length >> 2) : data);
        files++;
        bytes += where.startsWith('size') ? data.length >> 2 : data.length;
      }
    }
  }
  return { files, bytes };
}

/** Years of posts, so the database has a size worth backing up carefully. */
function addHistory(file: string, megabytes: number): void {
  const db = new Database(file);
  try {
    const insert = db.prepare("INSERT INTO posts (id, uuid, title, slug, html, status, created_at) VALUES (?, ?, ?, ?, ?, 'published', ?)");
    const body = '<p>' + 'It was a bright cold day in April, and the clocks were striking thirteen. '.repeat(50) + '</p>';
    const count = Math.round((megabytes * 1048576) / (body.length + 200));
    db.transaction(() => {
      for (let i = 0; i < count; i++) {
        const id = randomBytes(12).toString('hex');
        insert.run(id, randomUUID(), `Archive post ${i}`, `archive-${i}-${id.slice(0, 6)}`, body.replace('April', `April ${i}`), new Date(Date.UTC(2019, 0, 1) + i * 3600_000).toISOString());
      }
    })();
  } finally {
    db.close();
  }
}

export function createWorld(root: string, historyMb = 48): DemoWorld {
  fs.mkdirSync(root, { recursive: true });
  // The live site: Ghost at 6.0, as it has been running in production.
  const live = createSite();
  prepareDatabase(live, '6.0');
  const home = path.join(root, 'appservice-home');
  const wwwroot = path.join(home, 'site', 'wwwroot');
  fs.mkdirSync(path.join(wwwroot, 'content', 'data'), { recursive: true });
  const liveDb = path.join(wwwroot, 'content', 'data', 'ghost.db');
  fs.copyFileSync(live.db, liveDb);
  live.cleanup();
  addHistory(liveDb, historyMb);
  const images = writeImages(path.join(wwwroot, 'content', 'images'));

  // The build: the newer Ghost (6.2) from git, `npm install` done (node_modules linked).
  const checkout = createSite();
  const build = path.join(root, 'build');
  fs.cpSync(checkout.root, build, { recursive: true, verbatimSymlinks: true });
  checkout.cleanup();
  fs.rmSync(path.join(build, 'content', 'data', 'ghost.db'), { force: true });
  return { root, home, liveDb, build, images, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}
