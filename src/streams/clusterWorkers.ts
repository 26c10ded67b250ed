import cluster, { type Worker } from "node:cluster"
import { Data, Effect } from "effect"

/** A cluster worker died right after it started: restarting it would only loop. */
export class ClusterWorkerFailed extends Data.TaggedError("ClusterWorkerFailed")<{
  readonly exitCode: number | null
  readonly signal: string | null
  readonly livedMillis: number
}> {
  override get message(): string {
    return `a worker exited (code ${this.exitCode}, signal ${this.signal}) ${this.livedMillis} ms after it started; see its log above`
  }
}

/** How long stopping waits for the workers before it kills them: their own drain allows 30 s. */
const stopDeadlineMillis = 40_000

/** A worker that dies sooner than this after its start is not replaced: the primary fails instead. */
const crashLoopMillis = 5_000

/**
 * Runs `count` copies of the current program as node:cluster workers (the same entry point, each taking
 * its share of the connections on the listening port the workers share), and keeps that many running: a
 * worker that exits is replaced, unless it died within 5 s of starting, which fails this effect with
 * {@link ClusterWorkerFailed}. On interruption (SIGTERM / SIGINT in `runMain`) every worker gets SIGTERM,
 * and this waits for all of them to exit, so each finishes its in-flight requests (SIGKILL after 40 s).
 */
export const runClusterWorkers = (count: number): Effect.Effect<never, ClusterWorkerFailed> =>
  Effect.async<never, ClusterWorkerFailed>((resume) => {
    let stopping = false
    const startedAt = new Map<number, number>()
    const start = () => {
      const worker = cluster.fork()
      startedAt.set(worker.id, Date.now())
    }
    const living = () =>
      Object.values(cluster.workers ?? {}).filter(
        (worker): worker is Worker => worker !== undefined && !worker.isDead()
      )
    const stopAll = (onStopped: () => void) => {
      stopping = true
      const workers = living()
      let left = workers.length
      if (left === 0) return onStopped()
      // A worker still draining after this long is killed, so one stuck worker cannot hold the primary.
      const deadline = setTimeout(() => {
        for (const worker of workers) if (!worker.isDead()) worker.process.kill("SIGKILL")
      }, stopDeadlineMillis)
      cluster.on("exit", () => {
        if (--left > 0) return
        clearTimeout(deadline)
        onStopped()
      })
      for (const worker of workers) worker.process.kill("SIGTERM")
    }
    cluster.on("exit", (worker, exitCode, signal) => {
      if (stopping) return
      const livedMillis = Date.now() - (startedAt.get(worker.id) ?? 0)
      startedAt.delete(worker.id)
      if (livedMillis < crashLoopMillis) {
        stopAll(() => resume(Effect.fail(new ClusterWorkerFailed({ exitCode, signal, livedMillis }))))
        return
      }
      start()
    })
    for (let index = 0; index < count; index++) start()
    return Effect.async<void>((stopped) => stopAll(() => stopped(Effect.void)))
  })
