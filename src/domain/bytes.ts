import { isUtf8 } from "node:buffer"

/**
 * The UTF-8 bytes of a text. `Buffer.from` is a Uint8Array and takes ~0.3 µs for a 300-character record
 * where `TextEncoder.encode` takes ~1.7 µs (Node 20): it matters on paths that encode every record.
 */
export const utf8Bytes = (text: string): Uint8Array => Buffer.from(text, "utf8")

const bomKeepingDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/**
 * The text of UTF-8 bytes, a leading BOM kept (TextDecoder drops it by default, which made a BOM-prefixed
 * record valid in one reader and not in another); bytes that are not UTF-8 read as U+FFFD, so check them with
 * {@link utf8Problem} first where that matters.
 */
export const utf8Text = (bytes: Uint8Array): string => bomKeepingDecoder.decode(bytes)

/** The offset of the first byte that does not start or continue a well-formed UTF-8 sequence, or -1. */
export const firstInvalidUtf8Offset = (bytes: Uint8Array): number => {
  let at = 0
  while (at < bytes.length) {
    const lead = bytes[at] ?? 0
    if (lead < 0x80) {
      at++
      continue
    }
    const continuation =
      lead >= 0xc2 && lead <= 0xdf
        ? 1
        : lead >= 0xe0 && lead <= 0xef
          ? 2
          : lead >= 0xf0 && lead <= 0xf4
            ? 3
            : 0
    if (continuation === 0) return at
    const second = bytes[at + 1] ?? 0
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF, by the second byte's range.
    const low = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80
    const high = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf
    if (second < low || second > high) return at
    for (let index = 2; index <= continuation; index++)
      if (((bytes[at + index] ?? 0) & 0xc0) !== 0x80) return at
    at += continuation + 1
  }
  return -1
}

/**
 * Why bytes are not UTF-8 text, naming the first bad byte and where it is (1-based), or undefined when they
 * are. Valid input costs one native check.
 */
export const utf8Problem = (bytes: Uint8Array): string | undefined => {
  if (isUtf8(bytes)) return undefined
  const offset = firstInvalidUtf8Offset(bytes)
  const byte = bytes[offset] ?? 0
  return `not valid UTF-8: byte 0x${byte.toString(16).padStart(2, "0")} at byte ${offset + 1}`
}
