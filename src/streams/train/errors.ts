import { Data } from "effect"

/** Training, saving or loading the fraud model failed; `reason` says why in words. */
export class TrainError extends Data.TaggedError("TrainError")<{
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `fraud model: ${this.reason}`
  }
}
