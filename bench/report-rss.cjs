// Preloaded into a benchmarked Node process: prints its peak resident set size on exit.
process.on("exit", () => {
  require("node:fs").writeSync(2, `\n@@maxrss_kb ${process.resourceUsage().maxRSS}\n`)
})
