import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeLocalObjectStore, makeMemoryObjectStore } from "../src/layers/ObjectStore.js"
import { objectStoreContract } from "./support/objectStoreContract.js"

describe("ObjectStore contract", () => {
  objectStoreContract("memory", () => Effect.sync(makeMemoryObjectStore))
  objectStoreContract("local directory", () =>
    Effect.sync(() => makeLocalObjectStore(NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "store-"))))
  )
})

describe("local directory store", () => {
  it.effect("never lists the temporary files of an unfinished put", () =>
    Effect.gen(function* () {
      const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "store-"))
      const store = makeLocalObjectStore(root)
      NodeFs.mkdirSync(NodePath.join(root, "k"), { recursive: true })
      NodeFs.writeFileSync(NodePath.join(root, "k", ".tmp-1-1-part.parquet"), "half")
      yield* store.put("k/part.parquet", new Uint8Array([1, 2, 3]))
      assert.deepStrictEqual(
        (yield* store.list("k/")).map((info) => info.key),
        ["k/part.parquet"]
      )
    })
  )
})
