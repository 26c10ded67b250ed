import { Clock, Effect, Option, Schema } from "effect"
import type { ObjectStore } from "../../layers/ObjectStore.js"
import { TrainError } from "./errors.js"

/** Key of the pointer to the promoted model version (the one live scoring uses). */
export const promotedPointerKey = "models/promoted.json"

/** The promoted model: which version, when, and why it was promoted. */
export const PromotedPointer = Schema.Struct({
  version: Schema.String,
  promoted_at: Schema.String,
  reason: Schema.String
})
export type PromotedPointer = typeof PromotedPointer.Type

const decodePointer = Schema.decodeUnknownEither(Schema.parseJson(PromotedPointer))

/** The promoted pointer, none when no model was ever promoted; an unreadable pointer is a TrainError. */
export const readPromotedPointer = (
  store: ObjectStore
): Effect.Effect<Option.Option<PromotedPointer>, TrainError> =>
  Effect.flatMap(
    store
      .get(promotedPointerKey)
      .pipe(
        Effect.mapError((cause) => new TrainError({ reason: `reading ${promotedPointerKey} failed`, cause }))
      ),
    (body) =>
      Option.match(body, {
        onNone: () => Effect.succeed(Option.none()),
        onSome: (bytes) => {
          const decoded = decodePointer(new TextDecoder().decode(bytes))
          return decoded._tag === "Right"
            ? Effect.succeed(Option.some(decoded.right))
            : Effect.fail(
                new TrainError({ reason: `${promotedPointerKey} is unreadable: ${decoded.left.message}` })
              )
        }
      })
  )

/** Moves the promoted pointer to `version` (one object put: readers see the old or the new pointer). */
export const writePromotedPointer = (
  store: ObjectStore,
  version: string,
  reason: string
): Effect.Effect<PromotedPointer, TrainError> =>
  Effect.gen(function* () {
    const pointer: PromotedPointer = {
      version,
      promoted_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
      reason
    }
    yield* store
      .put(promotedPointerKey, new TextEncoder().encode(JSON.stringify(pointer, null, 2)))
      .pipe(
        Effect.mapError((cause) => new TrainError({ reason: `writing ${promotedPointerKey} failed`, cause }))
      )
    return pointer
  })

/** The outcome of comparing a new model with the promoted one on the new model's validation window. */
export type PromotionDecision =
  | { readonly promote: true; readonly reason: string }
  | { readonly promote: false; readonly reason: string }

/**
 * The automatic promotion rule: the first model is promoted; after that a new model is promoted only
 * when its PR-AUC on its validation window is strictly higher than the promoted model's on the same rows.
 * An unusable promoted model (missing files, older feature format) is replaced.
 */
export const decidePromotion = (
  candidate: { readonly version: string; readonly prAuc: number },
  promoted:
    | { readonly _tag: "None" }
    | { readonly _tag: "Unusable"; readonly version: string; readonly reason: string }
    | { readonly _tag: "Scored"; readonly version: string; readonly prAuc: number },
  window: string
): PromotionDecision => {
  switch (promoted._tag) {
    case "None":
      return { promote: true, reason: "first model: nothing was promoted" }
    case "Unusable":
      return {
        promote: true,
        reason: `promoted ${promoted.version} cannot score the validation window (${promoted.reason})`
      }
    case "Scored": {
      const figures = `PR-AUC ${candidate.prAuc.toFixed(4)} vs ${promoted.prAuc.toFixed(4)} of ${promoted.version} on ${window}`
      if (promoted.version === candidate.version)
        return { promote: false, reason: `${candidate.version} is already promoted` }
      return Number.isFinite(candidate.prAuc) && !(candidate.prAuc <= promoted.prAuc)
        ? { promote: true, reason: `beats the promoted model: ${figures}` }
        : { promote: false, reason: `does not beat the promoted model: ${figures}` }
    }
  }
}
