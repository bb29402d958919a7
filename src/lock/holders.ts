/**
 * Which processes hold a lock on a file. The kernel does not report owners of
 * OFD locks (F_OFD_GETLK and /proc/locks say pid -1), but /proc/<pid>/fdinfo
 * lists the locks held through each open descriptor; scanning the descriptors
 * that point at the file finds the holders. Only processes we may inspect are
 * seen (all of them as root).
 */
import fs from 'node:fs/promises';

export async function lockHolderPids(file: string): Promise<number[]> {
  let ino: number;
  try {
    ino = (await fs.stat(file)).ino;
  } catch {
    return [];
  }
  const pids = new Set<number>();
  let procs: string[];
  try {
    procs = (await fs.readdir('/proc')).filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  await Promise.all(
    procs.map(async (pid) => {
      let fds: string[];
      try {
        fds = await fs.readdir(`/proc/${pid}/fd`);
      } catch {
        return; // gone, or not ours to look at
      }
      for (const fd of fds) {
        try {
          const target = await fs.readlink(`/proc/${pid}/fd/${fd}`);
          if (target !== file) continue;
          const info = await fs.readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
          if (new RegExp(`^ino:\\s+${ino}$`, 'm').test(info) && /^lock:/m.test(info)) pids.add(Number(pid));
        } catch {
          // the descriptor closed meanwhile
        }
      }
    }),
  );
  return [...pids].sort((a, b) => a - b);
}
