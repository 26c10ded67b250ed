import { describe, expect, it } from "@effect/vitest"
import { jsonLinesRecords } from "../src/streams/rawRecords.js"

const encoder = new TextEncoder()
const bytesOf = (...parts: ReadonlyArray<string | Uint8Array>) =>
  Uint8Array.from(parts.flatMap((part) => [...(typeof part === "string" ? encoder.encode(part) : part)]))
const bom = "\uFEFF"

describe("JSON Lines records", () => {
  it("reads a long file after a line that is not UTF-8 (no spread of a huge array)", () => {
    const lines = Array.from({ length: 200_000 }, (_, index) => `{"n":${index}}\n`).join("")
    const records = jsonLinesRecords(bytesOf(Uint8Array.of(0xff, 0x0a), lines), "big.jsonl")
    expect(records).toHaveLength(200_001)
    expect(records[0]).toMatchObject({ location: "big.jsonl:1", refused: { field: "(record)" } })
    expect(records.at(-1)).toEqual({ location: "big.jsonl:200001", text: '{"n":199999}' })
  })

  it("drops a BOM only at the start of the file, whether or not a bad line comes before another", () => {
    const secondLine = `${bom}{"b":2}\n`
    const valid = jsonLinesRecords(bytesOf(`${bom}{"a":1}\n`, secondLine), "f.jsonl")
    const afterBadLine = jsonLinesRecords(bytesOf(Uint8Array.of(0xc3, 0x0a), secondLine), "f.jsonl")
    expect(valid).toEqual([
      { location: "f.jsonl:1", text: '{"a":1}' },
      { location: "f.jsonl:2", text: `${bom}{"b":2}` }
    ])
    expect(afterBadLine[1]).toEqual({ location: "f.jsonl:2", text: `${bom}{"b":2}` })
  })

  it("takes only JSON's whitespace for a blank line: a line of U+00A0, U+3000 or a BOM is a record", () => {
    const records = jsonLinesRecords(bytesOf(' \t\r\n\u00a0\n\u3000\n\n{"a":1}\n\uFEFF\n'), "w.jsonl")
    expect(records).toEqual([
      { location: "w.jsonl:2", text: "\u00a0" },
      { location: "w.jsonl:3", text: "\u3000" },
      { location: "w.jsonl:5", text: '{"a":1}' },
      { location: "w.jsonl:6", text: bom }
    ])
  })

  it("numbers lines as a text editor does: blank lines count, CRLF is one line end", () => {
    const records = jsonLinesRecords(
      bytesOf('{"a":1}\r\n\r\n', Uint8Array.of(0xe2, 0x82), "\r\n", '{"c":3}'),
      "g.jsonl"
    )
    expect(records.map((record) => record.location)).toEqual(["g.jsonl:1", "g.jsonl:3", "g.jsonl:4"])
    expect(records[1]).toMatchObject({
      refused: { reason: "not valid UTF-8: byte 0xe2 at byte 1 of the line" }
    })
    expect(records[2]).toEqual({ location: "g.jsonl:4", text: '{"c":3}' })
  })
})
