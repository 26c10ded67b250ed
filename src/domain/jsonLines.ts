/**
 * Calls `onValue` with each non-empty line of JSON Lines bytes, parsed. The bytes are decoded a block of
 * about 16 MiB at a time (cut at a newline), so no string comes near V8's length limit.
 */
export const forEachJsonLine = (bytes: Buffer, onValue: (value: unknown) => void): void => {
  const blockBytes = 16 << 20
  let start = 0
  while (start < bytes.length) {
    let end = bytes.length
    if (end - start > blockBytes) {
      const lastNewline = bytes.lastIndexOf(10, start + blockBytes)
      end = lastNewline > start ? lastNewline + 1 : bytes.indexOf(10, start + blockBytes) + 1 || bytes.length
    }
    for (const line of bytes.toString("utf8", start, end).split("\n")) {
      if (line !== "") onValue(JSON.parse(line))
    }
    start = end
  }
}
