/** Mixes 32-bit integers into one well-spread 32-bit seed (murmur3 finalizer over a running hash). */
export const mixSeed = (...parts: ReadonlyArray<number>): number => {
  let hash = 0x9e3779b9
  for (const part of parts) {
    hash = Math.imul(hash ^ (part >>> 0), 0x85ebca6b)
    hash ^= hash >>> 13
    hash = Math.imul(hash, 0xc2b2ae35)
    hash ^= hash >>> 16
  }
  return hash >>> 0
}

const letterAlphabet = "abcdefghijklmnopqrstuvwxyz"
const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

/**
 * A small seeded PRNG (xoshiro128**, state filled by splitmix32). Same seed, same sequence, on every
 * platform: the generator never touches Math.random or the clock.
 */
export class Random {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor(seed: number) {
    let state = seed >>> 0
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) >>> 0
      let z = state
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.s0 = splitmix()
    this.s1 = splitmix()
    this.s2 = splitmix()
    this.s3 = splitmix()
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const s1 = this.s1
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0
    const shifted = s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= shifted
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4_294_967_296
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next()
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return this.next() < probability
  }

  /** One element, uniformly. */
  pick<A>(items: ReadonlyArray<A>): A {
    return items[Math.floor(this.next() * items.length)]!
  }

  /** Picks from `[value, weight]` pairs in proportion to the weights. */
  weighted<A>(items: ReadonlyArray<readonly [A, number]>): A {
    let total = 0
    for (const [, weight] of items) total += weight
    let target = this.next() * total
    for (const [value, weight] of items) {
      target -= weight
      if (target < 0) return value
    }
    return items[items.length - 1]![0]
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next()
    const v = this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  /** Log-normal with the given median and log-space standard deviation. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal())
  }

  /** Exponentially distributed with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next())
  }

  /** Lower-case letters only. */
  letters(length: number): string {
    let text = ""
    for (let index = 0; index < length; index++) text += letterAlphabet[this.nextUint32() % 26]
    return text
  }

  /** Letters and digits where every third character is a letter, so no long digit run can form. */
  token(length: number): string {
    let text = ""
    for (let index = 0; index < length; index++) {
      text += index % 3 === 2 ? letterAlphabet[this.nextUint32() % 26] : tokenAlphabet[this.nextUint32() % 36]
    }
    return text
  }

  /** A string of `length` decimal digits. */
  digits(length: number): string {
    let text = ""
    for (let index = 0; index < length; index++) text += String(this.nextUint32() % 10)
    return text
  }
}

const rotl = (value: number, shift: number): number => (value << shift) | (value >>> (32 - shift))

/** Samples ranks 0…n−1 with probability proportional to 1/(rank+1)^exponent (Zipf). */
export class ZipfSampler {
  private readonly cumulative: Float64Array

  constructor(size: number, exponent: number) {
    this.cumulative = new Float64Array(size)
    let total = 0
    for (let rank = 0; rank < size; rank++) {
      total += 1 / (rank + 1) ** exponent
      this.cumulative[rank] = total
    }
  }

  /** One rank, drawn with `random`. */
  sample(random: Random): number {
    const cumulative = this.cumulative
    const target = random.next() * cumulative[cumulative.length - 1]!
    let low = 0
    let high = cumulative.length - 1
    while (low < high) {
      const middle = (low + high) >>> 1
      if (cumulative[middle]! > target) high = middle
      else low = middle + 1
    }
    return low
  }
}
