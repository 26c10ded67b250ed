/**
 * The UTF-8 bytes of a text. `Buffer.from` is a Uint8Array and takes ~0.3 µs for a 300-character record
 * where `TextEncoder.encode` takes ~1.7 µs (Node 20): it matters on paths that encode every record.
 */
export const utf8Bytes = (text: string): Uint8Array => Buffer.from(text, "utf8")
