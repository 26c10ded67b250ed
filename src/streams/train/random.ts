/** A seeded pseudo-random source of floats in [0, 1) (mulberry32): the only randomness training uses. */
export type Prng = () => number

/** mulberry32 seeded with a 32-bit integer. */
export const makePrng = (seed: number): Prng => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let mixed = state
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1)
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61)
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** A uniform integer in [0, bound). */
export const nextInt = (random: Prng, bound: number): number => Math.floor(random() * bound)

/** A Fisher–Yates permutation of 0 … length−1. */
export const permutation = (random: Prng, length: number): Int32Array => {
  const order = new Int32Array(length)
  for (let index = 0; index < length; index++) order[index] = index
  for (let index = length - 1; index > 0; index--) {
    const other = nextInt(random, index + 1)
    const held = order[index] as number
    order[index] = order[other] as number
    order[other] = held
  }
  return order
}

/**
 * Reservoir sampling (Algorithm R) fed one item at a time: a uniform sample of at most `capacity` items
 * in one pass, handed back in input order. The same input and seed give the same sample.
 */
export class Reservoir<A> {
  private readonly random: Prng
  private readonly slots: Array<{ readonly position: number; readonly item: A }> = []
  private seen = 0

  constructor(
    private readonly capacity: number,
    seed: number
  ) {
    this.random = makePrng(seed)
  }

  add(item: A): void {
    if (this.slots.length < this.capacity) this.slots.push({ position: this.seen, item })
    else {
      const slot = nextInt(this.random, this.seen + 1)
      if (slot < this.capacity) this.slots[slot] = { position: this.seen, item }
    }
    this.seen++
  }

  /** Items offered so far. */
  get offered(): number {
    return this.seen
  }

  /** The sample in input order. */
  items(): Array<A> {
    return [...this.slots].sort((a, b) => a.position - b.position).map((entry) => entry.item)
  }
}

/** {@link Reservoir} over a whole iterable. */
export const reservoirSample = <A>(items: Iterable<A>, capacity: number, seed: number): Array<A> => {
  const reservoir = new Reservoir<A>(capacity, seed)
  for (const item of items) reservoir.add(item)
  return reservoir.items()
}
