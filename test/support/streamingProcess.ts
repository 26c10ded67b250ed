import { type ChildProcess, spawn } from "node:child_process"
import * as NodePath from "node:path"
import { Data, Deferred, Duration, Effect, type Scope } from "effect"
import { AssignerProtocol, Kafka, logLevel } from "kafkajs"
import type { ObjectStore } from "../../src/layers/ObjectStore.js"
import { streamingPrefixes } from "../../src/streams/streamingIndex.js"

/** The built streaming service (`npm run build`). */
export const streamingScript = NodePath.resolve("dist/programs/streaming.js")

/** How a child process ended. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A wait on an external process or service did not come true in time, or the process died first. */
export class StreamingProcessError extends Data.TaggedError("StreamingProcessError")<{
  readonly reason: string
  readonly logTail: string
}> {
  override get message(): string {
    return `${this.reason}\n--- log tail ---\n${this.logTail}`
  }
}

/** A running `dist/programs/streaming.js`, its logs captured in memory. */
export interface StreamingProcess {
  readonly label: string
  readonly pid: number
  /** Everything it wrote to stdout and stderr so far. */
  readonly logs: () => string
  /** The last lines of its logs, for error messages. */
  readonly logTail: (lines?: number) => string
  /** How many `micro-batch committed` lines it logged. */
  readonly committedBatches: () => number
  /** Its exit, once it exited. */
  readonly exitStatus: () => ProcessExit | undefined
  /** SIGKILL, then waits for the exit. */
  readonly kill9: Effect.Effect<ProcessExit>
  /** SIGTERM (graceful: ends after the current micro-batch), then waits for the exit within `timeout`. */
  readonly stop: (timeout?: Duration.DurationInput) => Effect.Effect<ProcessExit, StreamingProcessError>
  /** Waits for the process to exit by itself, within `timeout`. */
  readonly waitForExit: (timeout: Duration.DurationInput) => Effect.Effect<ProcessExit, StreamingProcessError>
}

const tailOf = (text: string, lines: number): string => text.split("\n").slice(-lines).join("\n")

/**
 * Starts the built streaming service with `process.env` plus `env`; the process is SIGKILLed when the
 * scope closes if it still runs. Give each test its own topics, group and buckets through `env`.
 */
export const startStreamingProcess = (
  label: string,
  env: Readonly<Record<string, string>>
): Effect.Effect<StreamingProcess, never, Scope.Scope> =>
  Effect.gen(function* () {
    const exited = yield* Deferred.make<ProcessExit>()
    let output = ""
    let exitStatus: ProcessExit | undefined
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const started = spawn(process.execPath, [streamingScript], {
          env: { ...process.env, RECON_OPS_PORT: "0", RECON_KAFKA_SESSION_TIMEOUT_MS: "6000", ...env },
          stdio: ["ignore", "pipe", "pipe"]
        })
        const capture = (chunk: Buffer) => {
          output += chunk.toString("utf8")
        }
        started.stdout?.on("data", capture)
        started.stderr?.on("data", capture)
        started.on("exit", (code, signal) => {
          exitStatus = { code, signal }
          Deferred.unsafeDone(exited, Effect.succeed(exitStatus))
        })
        return started
      }),
      (started) =>
        exitStatus === undefined
          ? Effect.zipRight(
              Effect.sync(() => started.kill("SIGKILL")),
              Deferred.await(exited)
            )
          : Effect.void
    )
    const logTail = (lines = 40) => tailOf(output, lines)
    const waitForExit = (timeout: Duration.DurationInput) =>
      Deferred.await(exited).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new StreamingProcessError({
              reason: `${label} did not exit within ${Duration.format(timeout)}`,
              logTail: logTail()
            })
        })
      )
    return {
      label,
      pid: child.pid ?? -1,
      logs: () => output,
      logTail,
      committedBatches: () => output.split("micro-batch committed").length - 1,
      exitStatus: () => exitStatus,
      kill9: Effect.zipRight(
        Effect.sync(() => {
          if (exitStatus === undefined) child.kill("SIGKILL")
        }),
        Deferred.await(exited)
      ),
      stop: (timeout = Duration.seconds(30)) =>
        Effect.zipRight(
          Effect.sync(() => {
            if (exitStatus === undefined) child.kill("SIGTERM")
          }),
          waitForExit(timeout)
        ),
      waitForExit
    } satisfies StreamingProcess
  })

/**
 * Polls `condition` (every `interval`, default 100 ms) until it yields true, within `timeout`. Fails early
 * if one of `watched` exits meanwhile, with its log tail. This waits on real external state, never on time.
 */
export const waitUntil = <E, R>(
  description: string,
  condition: Effect.Effect<boolean, E, R>,
  options: {
    readonly timeout: Duration.DurationInput
    readonly interval?: Duration.DurationInput
    readonly watched?: ReadonlyArray<StreamingProcess>
  }
): Effect.Effect<void, E | StreamingProcessError, R> => {
  const watched = options.watched ?? []
  const check: Effect.Effect<boolean, E | StreamingProcessError, R> = Effect.suspend(
    (): Effect.Effect<boolean, E | StreamingProcessError, R> => {
      const dead = watched.find((process) => process.exitStatus() !== undefined)
      return dead === undefined
        ? condition
        : Effect.fail(
            new StreamingProcessError({
              reason: `${dead.label} exited (${JSON.stringify(dead.exitStatus())}) while waiting for ${description}`,
              logTail: dead.logTail()
            })
          )
    }
  )
  const loop: Effect.Effect<void, E | StreamingProcessError, R> = Effect.flatMap(check, (done) =>
    done ? Effect.void : Effect.zipRight(Effect.sleep(options.interval ?? Duration.millis(100)), loop)
  )
  return loop.pipe(
    Effect.timeoutFail({
      duration: options.timeout,
      onTimeout: () =>
        new StreamingProcessError({
          reason: `timed out after ${Duration.format(options.timeout)} waiting for ${description}`,
          logTail: watched.map((process) => `[${process.label}]\n${process.logTail(20)}`).join("\n")
        })
    })
  )
}

/** How many batch manifests (`streaming_index/_batches/*.json`) the processed bucket holds. */
export const countManifests = (processed: ObjectStore) =>
  Effect.map(
    processed.list(streamingPrefixes.batches),
    (objects) => objects.filter((info) => info.key.endsWith(".json")).length
  )

/** A consumer group as the broker describes it. */
export interface GroupState {
  readonly state: string
  readonly members: number
  /** Assigned `<topic>/<partition>` per member client id. */
  readonly assignments: ReadonlyMap<string, ReadonlyArray<string>>
}

/** The state, members and assignments of a consumer group, straight from the broker. */
export const describeGroup = (brokers: ReadonlyArray<string>, group: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(async () => {
      const admin = new Kafka({
        brokers: [...brokers],
        clientId: "streaming-crash-test",
        logLevel: logLevel.NOTHING
      }).admin()
      await admin.connect()
      return admin
    }),
    (admin) =>
      Effect.tryPromise(async (): Promise<GroupState> => {
        const { groups } = await admin.describeGroups([group])
        const found = groups.find((entry) => entry.groupId === group)
        const assignments = new Map<string, Array<string>>()
        for (const member of found?.members ?? []) {
          const decoded =
            member.memberAssignment.length > 0
              ? AssignerProtocol.MemberAssignment.decode(member.memberAssignment)
              : null
          const list = assignments.get(member.clientId) ?? []
          for (const [topic, partitions] of Object.entries(decoded?.assignment ?? {}))
            for (const partition of partitions) list.push(`${topic}/${partition}`)
          assignments.set(member.clientId, list)
        }
        return { state: found?.state ?? "Dead", members: found?.members.length ?? 0, assignments }
      }),
    (admin) => Effect.promise(() => admin.disconnect().catch(() => undefined))
  )
