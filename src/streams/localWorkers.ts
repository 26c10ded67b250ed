import { spawn } from "node:child_process"
import { Data, Effect } from "effect"

/** A worker process ended without success: its command line (no secrets: options only) and exit. */
export class WorkerFailed extends Data.TaggedError("WorkerFailed")<{
  readonly args: ReadonlyArray<string>
  readonly exit: string
}> {
  override get message(): string {
    return `worker \`${this.args.join(" ")}\` failed: ${this.exit}`
  }
}

/**
 * Runs one CLI command in a child process of the same Node (the same script, execArgv and environment)
 * and gives its standard output; its standard error (progress, logs) passes through. Interrupting the
 * effect stops the child.
 */
export const runWorkerProcess = (
  script: string,
  args: ReadonlyArray<string>
): Effect.Effect<string, WorkerFailed> =>
  Effect.async<string, WorkerFailed>((resume) => {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const chunks: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
    child.on("error", (error) => resume(Effect.fail(new WorkerFailed({ args, exit: error.message }))))
    child.on("close", (code, signal) =>
      resume(
        code === 0
          ? Effect.succeed(Buffer.concat(chunks).toString("utf8"))
          : Effect.fail(new WorkerFailed({ args, exit: signal ?? `exit code ${code}` }))
      )
    )
    // Interrupted: stop the child and wait until it is gone, so nothing outlives the parent.
    return Effect.async<void>((stopped) => {
      if (child.exitCode !== null || child.signalCode !== null) return stopped(Effect.void)
      child.once("close", () => stopped(Effect.void))
      child.kill("SIGTERM")
    })
  })

/** A worker's standard output as the one JSON document it prints. */
export const parseWorkerOutput = (
  args: ReadonlyArray<string>,
  output: string
): Effect.Effect<unknown, WorkerFailed> =>
  Effect.try({
    try: () => JSON.parse(output) as unknown,
    catch: () =>
      new WorkerFailed({ args, exit: `printed no JSON summary: ${JSON.stringify(output.slice(0, 200))}` })
  })

/**
 * Runs `count` workers of one sharded command at once on this machine (`--shard i/count` appended to
 * each), the local stand-in for a Kubernetes Indexed Job. Fails, stopping the others, when one fails;
 * else gives each worker's JSON summary (its standard output) in shard order.
 */
export const runShardedWorkers = (
  script: string,
  args: ReadonlyArray<string>,
  count: number
): Effect.Effect<ReadonlyArray<unknown>, WorkerFailed> =>
  Effect.forEach(
    Array.from({ length: count }, (_, index) => [...args, "--shard", `${index}/${count}`]),
    (workerArgs) =>
      Effect.flatMap(runWorkerProcess(script, workerArgs), (output) => parseWorkerOutput(workerArgs, output)),
    { concurrency: "unbounded" }
  )
