// CPU time (user + system) of a set of processes, from /proc (Linux): on a busy shared machine a
// request's CPU cost is steadier than its latency, which includes waiting for a core.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU ms used so far by `pid` (all its threads). */
export function cpuMs(pid: number): number {
  const f = statFields(pid);
  // utime and stime are fields 14 and 15 of /proc/PID/stat; f starts at field 3.
  return f ? (Number(f[11]) + Number(f[12])) * TICK_MS : 0;
}

/** The processes in process group `pgid` (a child started in a group of its own, and what it started); only those named `comm` if given. */
export function groupPids(pgid: number, comm?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[2]) === pgid && (comm === undefined || commOf(Number(entry)) === comm)) pids.push(Number(entry));
  }
  return pids;
}

function commOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  } catch {
    return undefined;
  }
}

/** The children of `ppid` whose command name is `comm`. */
export function childPids(ppid: number, comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name === comm && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * Total CPU ms of the processes `pids()` names. The set is read again at each sample, and a
 * process seen before keeps its last reading if it has gone, so processes coming and going do not
 * make the total jump.
 */
export class CpuMeter {
  private readonly last = new Map<number, number>();
  constructor(private readonly pids: () => number[]) {}

  sample(): number {
    for (const pid of this.pids()) {
      const ms = cpuMs(pid);
      if (ms > 0 || !this.last.has(pid)) this.last.set(pid, ms);
    }
    let total = 0;
    for (const ms of this.last.values()) total += ms;
    return total;
  }
}
