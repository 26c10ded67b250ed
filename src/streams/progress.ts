import { Clock, Effect } from "effect"

/** Progress of a long run over a known number of units of work (input files, passes). */
export interface Progress {
  /** One more unit done, holding `rows` rows. */
  readonly advance: (rows: number) => Effect.Effect<void>
  /** The run is over: prints the closing line. */
  readonly done: Effect.Effect<void>
}

const compact = (value: number): string =>
  value >= 1e6
    ? `${(value / 1e6).toFixed(1)}M`
    : value >= 1e4
      ? `${Math.round(value / 1e3)}k`
      : `${Math.round(value)}`

/**
 * Progress on stderr (stdout stays for results): on a terminal one line rewritten in place at most four
 * times a second (files done, rows, rows/s, ETA from the share of files done); otherwise a line every ten
 * seconds. Always a closing summary line.
 */
export const makeProgress = (label: string, totalFiles: number, unit = "files"): Effect.Effect<Progress> =>
  Effect.gen(function* () {
    const interactive = process.stderr.isTTY === true
    const started = yield* Clock.currentTimeMillis
    let files = 0
    let rows = 0
    let shownAt = started
    const line = (now: number) => {
      const seconds = Math.max(0.001, (now - started) / 1000)
      const rate = rows / seconds
      const eta =
        files > 0 && files < totalFiles ? ` ETA ${Math.ceil((seconds * (totalFiles - files)) / files)}s` : ""
      return `${label}: ${files}/${totalFiles} ${unit}, ${compact(rows)} rows, ${compact(rate)} rows/s${eta}`
    }
    return {
      advance: (fileRows) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          files++
          rows += fileRows
          if (now - shownAt < (interactive ? 250 : 10_000)) return Effect.void
          shownAt = now
          return Effect.sync(() =>
            process.stderr.write(interactive ? `\r${line(now)}\u001b[K` : `${line(now)}\n`)
          )
        }),
      done: Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const summary = `${line(now)}, done in ${((now - started) / 1000).toFixed(1)}s`
          process.stderr.write(interactive ? `\r${summary}\u001b[K\n` : `${summary}\n`)
        })
      )
    }
  })
