import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, type Scope } from "effect"

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Removes the directories `<prefix><pid>-…` in the OS temporary directory whose process no longer runs:
 * what a process killed in the middle of a write (SIGKILL, OOM) left behind, which could be gigabytes of
 * spool, spill or copied input. Directories of running processes, this one included, are kept. Gives the
 * number removed.
 */
export const sweepStaleScratch = async (prefix: string): Promise<number> => {
  const root = NodeOs.tmpdir()
  const names = await NodeFs.readdir(root).catch(() => [] as Array<string>)
  let removed = 0
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1])
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isRunning(pid)) continue
    await NodeFs.rm(NodePath.join(root, name), { recursive: true, force: true })
    removed++
  }
  return removed
}

const swept = new Map<string, Promise<number>>()

/**
 * Creates a private directory `<prefix><pid>-XXXXXX` in the OS temporary directory. The first call for a
 * prefix in a process first sweeps that prefix's directories left by dead processes
 * ({@link sweepStaleScratch}); the caller removes its own directory when done.
 */
export const makeScratchDirectory = async (prefix: string): Promise<string> => {
  let sweep = swept.get(prefix)
  if (sweep === undefined) {
    sweep = sweepStaleScratch(prefix).catch(() => 0)
    swept.set(prefix, sweep)
  }
  await sweep
  return NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), `${prefix}${process.pid}-`))
}

/** {@link makeScratchDirectory} for as long as the scope lives, removed with everything in it when it closes. */
export const scopedScratchDirectory = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => makeScratchDirectory(prefix)),
    (directory) => Effect.promise(() => NodeFs.rm(directory, { recursive: true, force: true }))
  )
