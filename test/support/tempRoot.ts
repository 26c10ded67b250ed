import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

/**
 * Vitest global setup: every temporary directory of a test run (the tests' own, the DuckDB spools, the child
 * processes the tests start, which inherit TMPDIR) goes under one root that is removed when the run ends,
 * so runs leave nothing behind in the system's temporary directory, even when a test kills a process.
 */
export default function setup(): () => void {
  const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-test-run-"))
  const previous = process.env.TMPDIR
  process.env.TMPDIR = root
  return () => {
    if (previous === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previous
    NodeFs.rmSync(root, { recursive: true, force: true })
  }
}
