/// <reference lib="dom" />
/// <reference lib="dom.iterable" />

import * as NodeFs from "node:fs"
import { createServer } from "node:http"
import * as NodePath from "node:path"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { chromium } from "playwright-core"
import { currencyExponent } from "../src/domain/currency.js"
import { DuckDb } from "../src/layers/DuckDb.js"
import { layerMemory } from "../src/layers/KeyValueStore.js"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import * as RedisKeyValueStore from "../src/layers/RedisKeyValueStore.js"
import { readCurrentAggregation } from "../src/streams/aggregate.js"
import { aggregationServiceLayer } from "../src/streams/aggregationService.js"
import { reconcileRange, writeGeneratedSettlements } from "../src/streams/generateSettlements.js"
import { reconPanel, runReconcile } from "../src/streams/reconcile.js"
import { requireService } from "./support/services.js"
import { runSmallPipeline } from "./support/smallPipeline.js"

const redisUrl = requireService("Redis", "RECON_REDIS_URL")
const chromiumPath = requireService("Chromium", "RECON_CHROMIUM_PATH")
const runId = `${process.pid}-${Date.now().toString(36)}`
const prefix = `recon-test:${runId}:dash:`
/** Where the screenshot goes (ignored by git): look at it after a run. */
export const screenshotPath = NodePath.resolve(".cache/dashboard.png")
/** The reconciliation panel's screenshot. */
export const reconScreenshotPath = NodePath.resolve(".cache/dashboard-recon.png")

/** Minor units as the dashboard shows major units: grouped thousands, the currency's decimals. */
const major = (minor: string, exponent: number) => {
  const value = BigInt(minor)
  const base = 10n ** BigInt(exponent)
  const whole = (value / base).toLocaleString("en")
  return exponent === 0 ? whole : `${whole}.${(value % base).toString().padStart(exponent, "0")}`
}

describe.skipIf(redisUrl === undefined || chromiumPath === undefined)(
  "dashboard in headless Chromium",
  () => {
    afterAll(async () => {
      const redis = new Redis(redisUrl ?? "")
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length > 0) await redis.del(...keys)
      await redis.quit()
    })

    it.live(
      "shows the published figures from Redis: totals, rates, currencies, leaderboard and the hourly chart",
      () =>
        Effect.gen(function* () {
          const { processed } = yield* runSmallPipeline("dashboard", 400, 5)
          const kv = RedisKeyValueStore.layer({ url: Redacted.make(redisUrl ?? ""), prefix })
          const server = aggregationServiceLayer({ interval: Duration.minutes(10) }).pipe(
            Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
            Layer.provideMerge(
              Layer.mergeAll(Layer.succeed(ProcessedBucket, processed), Parquet.layer(), kv, DuckDb.layer)
            )
          )
          const context = yield* Layer.build(server)
          const address = (yield* Effect.provide(HttpServer.HttpServer, Layer.succeedContext(context)))
            .address
          const port = address._tag === "TcpAddress" ? address.port : 0
          const browser = yield* Effect.acquireRelease(
            Effect.promise(() =>
              chromium.launch({ executablePath: chromiumPath ?? "", args: ["--no-sandbox", "--disable-gpu"] })
            ),
            (opened) => Effect.promise(() => opened.close())
          )
          const page = yield* Effect.promise(() =>
            browser.newPage({ viewport: { width: 1440, height: 1000 } })
          )
          yield* Effect.promise(() => page.goto(`http://127.0.0.1:${port}/`))
          yield* Effect.promise(() => page.waitForSelector("#leaderboard tbody tr", { timeout: 15_000 }))
          const shown = yield* Effect.promise(() =>
            page.evaluate(() => {
              const figure = (label: string) =>
                document.querySelector(`[data-figure="${label}"] b`)?.textContent ?? null
              return {
                version: document.body.dataset["version"] ?? null,
                transactions: figure("Transactions"),
                merchants: figure("Merchants"),
                chargebackRate: figure("Chargeback rate"),
                fraudRate: figure("Confirmed fraud rate"),
                streamEvents: figure("Stream events since snapshot"),
                currencies: [...document.querySelectorAll("#volumes tbody tr")].map((row) =>
                  [...row.querySelectorAll("td")].map((cell) => cell.textContent)
                ),
                leaderboard: [...document.querySelectorAll("#leaderboard tbody tr")].map((row) => ({
                  merchant: (row as HTMLElement).dataset["merchant"],
                  cells: [...row.querySelectorAll("td")].map((cell) => cell.textContent)
                })),
                bars: document.querySelectorAll("#chart rect").length,
                freshness: document.getElementById("freshness")?.textContent ?? ""
              }
            })
          )
          yield* Effect.promise(() => page.screenshot({ path: screenshotPath, fullPage: true }))
          // The page polls until the service's first refresh is published; the next refresh is 10 minutes
          // away, so the version shown is the current one.
          const published = Option.getOrThrow(
            yield* Effect.provide(readCurrentAggregation(), Layer.succeedContext(context))
          )
          const global = published.global
          assert.strictEqual(shown.version, published.version)
          assert.strictEqual(shown.transactions, global.transaction_count.toLocaleString("en"))
          assert.strictEqual(shown.merchants, String(global.merchant_count))
          assert.strictEqual(shown.chargebackRate, `${(global.chargeback_rate * 100).toFixed(2)}%`)
          assert.strictEqual(shown.fraudRate, `${(global.confirmed_fraud_rate * 100).toFixed(2)}%`)
          assert.strictEqual(shown.streamEvents, global.stream_since_snapshot.events.toLocaleString("en"))
          assert.deepStrictEqual(
            shown.currencies.map((cells) => cells[0]),
            Object.keys(global.volume_minor)
          )
          for (const [currency, volume, captured] of shown.currencies) {
            const exponent = currencyExponent(currency ?? "")
            assert.strictEqual(
              volume,
              major(global.volume_minor[currency ?? ""] ?? "0", exponent),
              currency ?? ""
            )
            assert.strictEqual(captured, major(global.captured_volume_minor[currency ?? ""] ?? "0", exponent))
          }
          assert.deepStrictEqual(
            shown.leaderboard.map((row) => row.merchant),
            published.merchants.slice(0, 25).map((merchant) => merchant.merchant_id)
          )
          const first = published.merchants[0]
          assert.strictEqual(shown.leaderboard[0]?.cells[2], first?.transaction_count.toLocaleString("en"))
          assert.strictEqual(shown.bars, global.hourly.length)
          assert.include(shown.freshness, `version ${published.version}`)
          assert.isTrue(NodeFs.statSync(screenshotPath).size > 10_000, "screenshot saved")
        }).pipe(Effect.scoped),
      120_000
    )
  }
)

describe.skipIf(chromiumPath === undefined)("reconciliation panel in headless Chromium", () => {
  it.live(
    "shows the break counts and amounts by type of the current reconciliation",
    () =>
      Effect.gen(function* () {
        const { processed } = yield* runSmallPipeline("dashboard-recon", 400, 5)
        const storage = Layer.mergeAll(
          Layer.succeed(ProcessedBucket, processed),
          RawBucket.layerMemory,
          Parquet.layer(),
          layerMemory,
          DuckDb.layer
        )
        const server = aggregationServiceLayer({ interval: Duration.minutes(10) }).pipe(
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
          Layer.provideMerge(storage)
        )
        const context = yield* Layer.build(server)
        const generated = yield* Effect.provide(
          writeGeneratedSettlements({ seed: 5 }),
          Layer.succeedContext(context)
        )
        yield* Effect.provide(runReconcile(reconcileRange(generated)), Layer.succeedContext(context))
        const panel = Option.getOrThrow(yield* reconPanel(processed))
        const address = (yield* Effect.provide(HttpServer.HttpServer, Layer.succeedContext(context))).address
        const port = address._tag === "TcpAddress" ? address.port : 0
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({ executablePath: chromiumPath ?? "", args: ["--no-sandbox", "--disable-gpu"] })
          ),
          (opened) => Effect.promise(() => opened.close())
        )
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1440, height: 1000 } }))
        yield* Effect.promise(() => page.goto(`http://127.0.0.1:${port}/`))
        yield* Effect.promise(() => page.waitForSelector("#recon-breaks tbody tr", { timeout: 15_000 }))
        const rows = yield* Effect.promise(() =>
          page.evaluate(() =>
            [...document.querySelectorAll("#recon-breaks tbody tr")].map((row) => ({
              type: (row as HTMLElement).dataset["breakType"],
              cells: [...row.querySelectorAll("td")].map((cell) => cell.textContent)
            }))
          )
        )
        yield* Effect.promise(() => page.screenshot({ path: reconScreenshotPath, fullPage: true }))
        assert.deepStrictEqual(
          rows.map((row) => [row.type, row.cells[1]]),
          panel.by_type.map((row) => [row.break_type, row.count.toLocaleString("en")])
        )
        for (const [at, row] of panel.by_type.entries())
          for (const [currency, minor] of Object.entries(row.amount_minor))
            assert.include(
              rows[at]?.cells[2] ?? "",
              `${major(minor, currencyExponent(currency))} ${currency}`
            )
        assert.strictEqual(
          panel.by_type.reduce((sum, row) => sum + row.count, 0),
          generated.breaks.length
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
