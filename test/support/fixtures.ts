import { gzipSync } from "node:zlib"
import { Effect, Layer, Option } from "effect"
import type { ObjectStoreError } from "../../src/domain/errors.js"
import { EventLogService } from "../../src/layers/EventLog.js"
import { type ObjectStore, ProcessedBucket, RawBucket } from "../../src/layers/ObjectStore.js"
import { Parquet } from "../../src/layers/ParquetCodec.js"

/** A valid transaction event on the wire, with overrides. */
export const transactionJson = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  event_id: "e-1",
  transaction_id: "t-1",
  sequence: 0,
  event_time: "2026-11-24T10:00:00Z",
  status: "authorized",
  amount_minor: 1000,
  currency: "USD",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-1",
  country: "US",
  ...overrides
})

/** A valid fraud signal on the wire, with overrides. */
export const signalJson = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  signal_id: "s-1",
  transaction_id: "t-1",
  event_time: "2026-11-24T10:00:01Z",
  source: "rules",
  score: 0.5,
  reasons: ["velocity"],
  ...overrides
})

export const userJson = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  user_id: "u-1",
  created_at: "2025-01-01T00:00:00Z",
  country: "US",
  kyc_level: "full",
  risk_tier: "low",
  ...overrides
})

export const merchantJson = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  merchant_id: "m-1",
  name: "Café 東京",
  mcc: "5812",
  country: "JP",
  risk_level: "low",
  settlement_currency: "JPY",
  ...overrides
})

/** JSON Lines bytes from records or raw lines. */
export const jsonLines = (...lines: ReadonlyArray<Record<string, unknown> | string>): Uint8Array =>
  new TextEncoder().encode(
    lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n") + "\n"
  )

export const gzipped = (body: Uint8Array): Uint8Array => new Uint8Array(gzipSync(body))

/**
 * Embedded layers in memory: raw and processed buckets, event log, and the pure-JavaScript Parquet codec,
 * whose work completes without real I/O, so TestClock-driven stream tests see each batch finish.
 */
export const memoryLayers = Layer.mergeAll(
  RawBucket.layerMemory,
  ProcessedBucket.layerMemory,
  EventLogService.layerMemory(2),
  Parquet.layerParquetjs({ rowGroupSize: 1000 })
)

/** The text of every quarantine file under `prefix` (`quarantine/batch/`, `quarantine/stream/`), one after another. */
export const quarantineText = (store: ObjectStore, prefix: string): Effect.Effect<string, ObjectStoreError> =>
  Effect.gen(function* () {
    let text = ""
    for (const entry of yield* store.list(prefix)) {
      const body = yield* store.get(entry.key)
      if (Option.isSome(body)) text += new TextDecoder().decode(body.value)
    }
    return text
  })
