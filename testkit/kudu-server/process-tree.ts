// Job processes are spawned as process-group leaders; these helpers see and end the whole tree.
// Linux reads /proc; elsewhere CPU time is unknown and Windows uses taskkill /T.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

interface ProcStat { pid: number; ppid: number; pgrp: number; cpuTicks: number }

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may itself contain spaces or ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
  const n = (field: number): number => Number(fields[field - 3]);
  return { pid, ppid: n(4), pgrp: n(5), cpuTicks: n(14) + n(15) + n(16) + n(17) };
}

function allStats(): ProcStat[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const stats: ProcStat[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (st) stats.push(st);
  }
  return stats;
}

/** The leader, every process in its group, and every descendant (also those that left the group). */
function treeOf(rootPid: number): ProcStat[] {
  const stats = allStats();
  const members = new Map<number, ProcStat>();
  for (const st of stats) if (st.pid === rootPid || st.pgrp === rootPid) members.set(st.pid, st);
  let grew = true;
  while (grew) {
    grew = false;
    for (const st of stats) {
      if (!members.has(st.pid) && members.has(st.ppid)) {
        members.set(st.pid, st);
        grew = true;
      }
    }
  }
  return [...members.values()];
}

export function treePids(rootPid: number): number[] {
  return process.platform === 'linux' ? treeOf(rootPid).map(s => s.pid) : [rootPid];
}

/**
 * Total CPU time (clock ticks) used by the tree, like Kudu's GetTotalProcessorTime over the
 * job's processes; undefined where it cannot be read (then only output counts as activity).
 */
export function treeCpuTicks(rootPid: number): number | undefined {
  if (process.platform !== 'linux') return undefined;
  const tree = treeOf(rootPid);
  return tree.length === 0 ? undefined : tree.reduce((sum, st) => sum + st.cpuTicks, 0);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie still answers signal 0; it no longer runs anything.
  if (process.platform === 'linux') {
    try {
      const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  }
  return true;
}

/** SIGKILL the group and every descendant found. Safe to call on a tree that is already gone. */
export function killTree(rootPid: number): void {
  if (process.platform === 'win32') {
    spawnSync('taskkill', ['/pid', String(rootPid), '/T', '/F'], { stdio: 'ignore' });
    return;
  }
  const pids = treePids(rootPid);
  try {
    process.kill(-rootPid, 'SIGKILL');
  } catch {
    // group already gone
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
