import { spawnSync } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { makeScratchDirectory, sweepStaleScratch } from "../src/layers/scratch.js"

/** The pid of a process that has already exited. */
const deadPid = (): number => {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8"
  })
  return Number(child.stdout)
}

describe("scratch directories", () => {
  it("sweeps those of processes that no longer run and keeps the others", async () => {
    const prefix = `recon-scratch-test-${process.pid}-`
    const make = (owner: string) => {
      const path = NodePath.join(NodeOs.tmpdir(), `${prefix}${owner}-x1`)
      NodeFs.mkdirSync(NodePath.join(path, "spill"), { recursive: true })
      NodeFs.writeFileSync(NodePath.join(path, "spill", "part.json"), "{}")
      return path
    }
    const dead = deadPid()
    const ofDeadProcess = make(String(dead))
    const ofThisProcess = make(String(process.pid))
    const ofParent = make(String(process.ppid))
    const notOurs = make("not-a-pid")
    assert.strictEqual(await sweepStaleScratch(prefix), 1)
    assert.isFalse(NodeFs.existsSync(ofDeadProcess), "left by a process that died: removed")
    for (const kept of [ofThisProcess, ofParent, notOurs]) assert.isTrue(NodeFs.existsSync(kept), kept)
    const fresh = await makeScratchDirectory(prefix)
    assert.isTrue(NodePath.basename(fresh).startsWith(`${prefix}${process.pid}-`))
    for (const path of [ofThisProcess, ofParent, notOurs, fresh]) NodeFs.rmSync(path, { recursive: true })
  })

  it("a process killed in the middle of a write leaves its directory to the next one to sweep", async () => {
    const prefix = `recon-scratch-kill-${process.pid}-`
    const script = `
      const fs = require("node:fs"), os = require("node:os"), path = require("node:path")
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), ${JSON.stringify(prefix)} + process.pid + "-"))
      fs.writeFileSync(path.join(dir, "spool.json"), "x".repeat(1 << 16))
      process.stdout.write(dir)
      process.kill(process.pid, "SIGKILL")`
    const child = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" })
    assert.strictEqual(child.signal, "SIGKILL")
    const left = child.stdout
    assert.isTrue(NodeFs.existsSync(left))
    const mine = await makeScratchDirectory(prefix)
    assert.isFalse(NodeFs.existsSync(left), "the first directory made with the prefix swept it")
    NodeFs.rmSync(mine, { recursive: true })
  })
})
