/** Compares strings by Unicode code point (the order of UTF-8 bytes, as SQL engines sort). */
export const compareCodePoints = (left: string, right: string): number => {
  if (left === right) return 0
  const length = Math.min(left.length, right.length)
  for (let index = 0; index < length; index++) {
    const a = left.charCodeAt(index)
    const b = right.charCodeAt(index)
    if (a === b) continue
    const aSurrogate = a >= 0xd800 && a <= 0xdfff
    const bSurrogate = b >= 0xd800 && b <= 0xdfff
    if (aSurrogate === bSurrogate) return a - b
    return aSurrogate ? 1 : -1
  }
  return left.length - right.length
}
