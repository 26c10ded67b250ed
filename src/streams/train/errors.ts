import { Data } from "effect"

/** Training, saving or loading the fraud model failed; `reason` says why in words. */
export class TrainError extends Data.TaggedError("TrainError")<{
  readonly reason: string
  readonly cause?: unknown
  /** `missing`: a model file is absent; `incompatible`: a saved model this code cannot use. */
  readonly kind?: "missing" | "incompatible"
}> {
  override get message(): string {
    return `fraud model: ${this.reason}`
  }
}
