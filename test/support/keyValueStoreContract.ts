import { KeyValueStore } from "@effect/platform"
import { assert, layer } from "@effect/vitest"
import { Duration, Effect, type Layer, Option, Schema } from "effect"

export interface KeyValueStoreContractOptions {
  /** Size of the "large value" cases; DynamoDB caps an item at 400 KB. Default 300 000 bytes. */
  readonly largeValueBytes?: number
}

const encoder = new TextEncoder()

/** Deterministic bytes covering every byte value (xorshift32 from a seed). */
const seededBytes = (length: number, seed: number) => {
  const bytes = new Uint8Array(length)
  let state = seed >>> 0 || 1
  for (let index = 0; index < length; index++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    bytes[index] = index < 256 ? index : state & 0xff
  }
  return bytes
}

const Aggregate = Schema.Struct({ merchant: Schema.String, amountMinor: Schema.Number, count: Schema.Number })

/**
 * The behaviour of @effect/platform's `KeyValueStore` that every implementation must keep; run once per
 * layer. The layer is built once for the block with live services (real servers need real time); every
 * test starts from `clear`, so the store must be dedicated to the suite.
 */
export const keyValueStoreContract = (
  name: string,
  storeLayer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>,
  options: KeyValueStoreContractOptions = {}
) => {
  const largeValueBytes = options.largeValueBytes ?? 300_000
  layer(storeLayer, { excludeTestServices: true, timeout: Duration.minutes(2) })(
    `KeyValueStore contract: ${name}`,
    (it) => {
      const freshStore = Effect.flatMap(KeyValueStore.KeyValueStore, (store) => Effect.as(store.clear, store))

      it.effect("set then get; a missing key is None", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          yield* store.set("merchant:m-1", "42")
          assert.deepStrictEqual(yield* store.get("merchant:m-1"), Option.some("42"))
          assert.deepStrictEqual(yield* store.get("merchant:missing"), Option.none())
          assert.deepStrictEqual(yield* store.getUint8Array("merchant:missing"), Option.none())
          assert.isTrue(yield* store.has("merchant:m-1"))
          assert.isFalse(yield* store.has("merchant:missing"))
        })
      )

      // `get` of a value set as bytes is not part of the contract: the platform's memory store answers
      // base64, its file store (like Redis and DynamoDB here) answers the UTF-8 decoding.
      it.effect("set replaces the value; a string reads back as its UTF-8 bytes", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          yield* store.set("k", "first, and longer")
          yield* store.set("k", "second")
          assert.deepStrictEqual(yield* store.get("k"), Option.some("second"))
          const asBytes = yield* store.getUint8Array("k")
          assert.isTrue(Option.isSome(asBytes))
          if (Option.isSome(asBytes))
            assert.deepStrictEqual([...asBytes.value], [...encoder.encode("second")])

          yield* store.set("b", encoder.encode("bytes ✓"))
          assert.isTrue(yield* store.has("b"))
          assert.strictEqual(yield* store.size, 2)
        })
      )

      it.effect("binary values round-trip byte for byte, including every byte value", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          const body = seededBytes(4096, 11)
          yield* store.set("binary", body)
          const read = yield* store.getUint8Array("binary")
          assert.isTrue(Option.isSome(read))
          if (Option.isSome(read)) assert.isTrue(Buffer.from(read.value).equals(body), "bytes differ")
          const view = seededBytes(100, 5).subarray(10, 20)
          yield* store.set("view", view)
          const viewRead = yield* store.getUint8Array("view")
          assert.isTrue(
            Option.isSome(viewRead) && Buffer.from(viewRead.value).equals(view),
            "a subarray is stored whole"
          )
        })
      )

      it.effect("remove deletes; removing a missing key succeeds", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          yield* store.set("gone", "soon")
          yield* store.remove("gone")
          yield* store.remove("never-there")
          assert.deepStrictEqual(yield* store.get("gone"), Option.none())
          assert.isFalse(yield* store.has("gone"))
          assert.strictEqual(yield* store.size, 0)
        })
      )

      it.effect("size counts keys; clear empties the store", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          assert.isTrue(yield* store.isEmpty)
          for (let index = 0; index < 60; index++) yield* store.set(`key-${index}`, String(index))
          yield* store.set("key-0", "again")
          assert.strictEqual(yield* store.size, 60)
          assert.isFalse(yield* store.isEmpty)
          yield* store.clear
          assert.strictEqual(yield* store.size, 0)
          assert.isTrue(yield* store.isEmpty)
          assert.deepStrictEqual(yield* store.get("key-1"), Option.none())
          yield* store.set("after-clear", "ok")
          assert.strictEqual(yield* store.size, 1)
        })
      )

      it.effect("modify updates an existing value and leaves a missing key missing", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          yield* store.set("count", "41")
          assert.deepStrictEqual(
            yield* store.modify("count", (value) => String(Number(value) + 1)),
            Option.some("42")
          )
          assert.deepStrictEqual(yield* store.get("count"), Option.some("42"))
          assert.deepStrictEqual(yield* store.modify("absent", (value) => `${value}!`), Option.none())
          assert.isFalse(yield* store.has("absent"))
          yield* store.set("bytes", new Uint8Array([1, 2, 3]))
          const modified = yield* store.modifyUint8Array("bytes", (value) => value.map((byte) => byte * 2))
          assert.deepStrictEqual(
            Option.map(modified, (value) => [...value]),
            Option.some([2, 4, 6])
          )
        })
      )

      it.effect("unicode and punctuation in keys and values", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          const entries: ReadonlyArray<readonly [string, string]> = [
            ["merchant/ünïcødé", "Zürich café 🍕"],
            ["日本語のキー", "値：¥1,000"],
            ["emoji 🎉 key", "👩‍👩‍👧‍👦 family"],
            ["glob*?[chars]\\", "star"],
            ["spaces and:colons", "e\u0301 combining"],
            ["empty-value", ""]
          ]
          for (const [key, value] of entries) yield* store.set(key, value)
          for (const [key, value] of entries)
            assert.deepStrictEqual(yield* store.get(key), Option.some(value), key)
          assert.strictEqual(yield* store.size, entries.length)
          yield* store.remove("glob*?[chars]\\")
          assert.strictEqual(yield* store.size, entries.length - 1)
        })
      )

      it.effect("large values round-trip", () =>
        Effect.gen(function* () {
          const store = yield* freshStore
          const large = "ab€".repeat(Math.floor(largeValueBytes / 5))
          yield* store.set("large-text", large)
          assert.strictEqual(Option.getOrNull(yield* store.get("large-text")), large)
          const bytes = seededBytes(largeValueBytes, 99)
          yield* store.set("large-bytes", bytes)
          const read = yield* store.getUint8Array("large-bytes")
          assert.isTrue(Option.isSome(read) && Buffer.from(read.value).equals(bytes), "large bytes differ")
        })
      )

      it.effect("forSchema stores and reads JSON values", () =>
        Effect.gen(function* () {
          const store = (yield* freshStore).forSchema(Aggregate)
          yield* store.set("agg:m-7", { merchant: "m-7", amountMinor: 123_456, count: 3 })
          assert.deepStrictEqual(
            yield* store.get("agg:m-7"),
            Option.some({ merchant: "m-7", amountMinor: 123_456, count: 3 })
          )
        })
      )
    }
  )
}
