import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { ObjectStore } from "../../src/layers/ObjectStore.js"

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (body: Option.Option<Uint8Array>) =>
  Option.match(body, { onNone: () => null, onSome: (value) => new TextDecoder().decode(value) })

/** The behaviour every ObjectStore implementation must have; run once per implementation. */
export const objectStoreContract = (name: string, makeStore: () => Effect.Effect<ObjectStore>) => {
  it.effect(`${name}: put then get returns the same bytes; a missing key is None`, () =>
    Effect.gen(function* () {
      const store = yield* makeStore()
      yield* store.put("raw/transactions/dt=2026-11-24/part-0.jsonl", bytes("héllo\n"))
      assert.strictEqual(text(yield* store.get("raw/transactions/dt=2026-11-24/part-0.jsonl")), "héllo\n")
      assert.isTrue(Option.isNone(yield* store.get("raw/transactions/missing")))
      assert.isTrue(Option.isNone(yield* store.get("raw/transactions")), "a prefix is not an object")
    })
  )

  it.effect(`${name}: putFile stores a file's bytes; a missing file fails and leaves no object`, () =>
    Effect.gen(function* () {
      const store = yield* makeStore()
      const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "put-file-"))
      const file = NodePath.join(directory, "export.jsonl")
      NodeFs.writeFileSync(file, "line 1\nline 2\n")
      yield* store.putFile("raw/transactions/dt=2026-11-24/export.jsonl", file)
      assert.strictEqual(
        text(yield* store.get("raw/transactions/dt=2026-11-24/export.jsonl")),
        "line 1\nline 2\n"
      )
      const missing = yield* Effect.exit(store.putFile("raw/missing.jsonl", NodePath.join(directory, "nope")))
      assert.isTrue(missing._tag === "Failure")
      assert.isTrue(Option.isNone(yield* store.get("raw/missing.jsonl")))
      assert.deepStrictEqual(
        (yield* store.list("raw/")).map((info) => info.key),
        ["raw/transactions/dt=2026-11-24/export.jsonl"]
      )
    })
  )

  it.effect(`${name}: put replaces an object whole`, () =>
    Effect.gen(function* () {
      const store = yield* makeStore()
      yield* store.put("a/b", bytes("first version, longer"))
      yield* store.put("a/b", bytes("second"))
      assert.strictEqual(text(yield* store.get("a/b")), "second")
    })
  )

  it.effect(`${name}: list returns every key under a prefix, sorted, with sizes`, () =>
    Effect.gen(function* () {
      const store = yield* makeStore()
      for (const key of ["p/x/2", "p/x/10", "p/y", "q/z", "px"]) yield* store.put(key, bytes(key))
      const listed = yield* store.list("p/")
      assert.deepStrictEqual(
        listed.map((info) => info.key),
        ["p/x/10", "p/x/2", "p/y"]
      )
      assert.deepStrictEqual(
        listed.map((info) => info.size),
        [6, 5, 3]
      )
      assert.deepStrictEqual(
        (yield* store.list("p")).map((info) => info.key),
        ["p/x/10", "p/x/2", "p/y", "px"]
      )
      assert.deepStrictEqual(yield* store.list("nothing/"), [])
    })
  )

  it.effect(`${name}: delete removes an object and deleting a missing key is fine`, () =>
    Effect.gen(function* () {
      const store = yield* makeStore()
      yield* store.put("d/1", bytes("1"))
      yield* store.delete("d/1")
      yield* store.delete("d/never")
      assert.isTrue(Option.isNone(yield* store.get("d/1")))
      assert.deepStrictEqual(yield* store.list("d/"), [])
    })
  )
}
