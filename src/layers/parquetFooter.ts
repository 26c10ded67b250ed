/**
 * Rewriting a Parquet file's footer so that its text columns read as binary and, when asked, its timestamp
 * columns as plain integers. DuckDB refuses a whole file when one value of a UTF8-annotated column is not
 * UTF-8, or when one millisecond timestamp is past what microseconds can hold. Read without those
 * annotations, the same values come through and the reader checks each one itself: only the rows holding a
 * bad value are refused (contract §4: one bad line never spoils the file). The data pages are not touched,
 * since they come before the footer; only the schema's annotations change.
 */

import { ByteSink, writeFieldHeader } from "./parquetSpool.js"

const magic = [0x50, 0x41, 0x52, 0x31] // "PAR1"

/** Thrift compact protocol type codes. */
const compact = {
  stop: 0,
  booleanTrue: 1,
  booleanFalse: 2,
  byte: 3,
  i16: 4,
  i32: 5,
  i64: 6,
  double: 7,
  binary: 8,
  list: 9,
  set: 10,
  map: 11,
  struct: 12,
  uuid: 13
} as const

const isBoolean = (type: number): boolean => type === compact.booleanTrue || type === compact.booleanFalse

/** A value of the footer cannot be read as Thrift's compact protocol. */
class MalformedFooter extends Error {}

/** Reads Thrift compact values from a footer, only far enough to know where each one ends. */
class CompactReader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number
  ) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new MalformedFooter("the footer ends early")
    return this.bytes[this.at++]!
  }

  varint(): number {
    let value = 0
    let scale = 1
    for (let index = 0; index < 10; index++) {
      const next = this.byte()
      value += (next & 0x7f) * scale
      if (next < 0x80) return value
      scale *= 0x80
    }
    throw new MalformedFooter("a varint is longer than 10 bytes")
  }

  zigzag(): number {
    const value = this.varint()
    return value % 2 === 0 ? value / 2 : -(value + 1) / 2
  }

  skip(count: number): void {
    if (count < 0 || this.at + count > this.bytes.length) throw new MalformedFooter("the footer ends early")
    this.at += count
  }

  /** A collection's declared size, refused when its elements (a byte each at least) cannot fit in what is left. */
  size(declared: number): number {
    if (declared > this.bytes.length - this.at)
      throw new MalformedFooter("a collection is larger than the footer")
    return declared
  }

  /** Skips one element of a list, set or map, where a boolean takes a byte of its own. */
  skipElement(type: number, depth: number): void {
    if (isBoolean(type)) this.skip(1)
    else this.skipValue(type, depth)
  }

  /** Skips one value of compact `type`. */
  skipValue(type: number, depth = 0): void {
    if (depth > 64) throw new MalformedFooter("the footer nests too deeply")
    switch (type) {
      case compact.booleanTrue:
      case compact.booleanFalse:
        return
      case compact.byte:
        this.skip(1)
        return
      case compact.i16:
      case compact.i32:
      case compact.i64:
        this.varint()
        return
      case compact.double:
        this.skip(8)
        return
      case compact.uuid:
        this.skip(16)
        return
      case compact.binary:
        this.skip(this.varint())
        return
      case compact.list:
      case compact.set: {
        const header = this.byte()
        const size = this.size(header >> 4 === 15 ? this.varint() : header >> 4)
        const elementType = header & 0x0f
        for (let index = 0; index < size; index++) this.skipElement(elementType, depth + 1)
        return
      }
      case compact.map: {
        const size = this.size(this.varint())
        if (size === 0) return
        const types = this.byte()
        for (let index = 0; index < size; index++) {
          this.skipElement(types >> 4, depth + 1)
          this.skipElement(types & 0x0f, depth + 1)
        }
        return
      }
      case compact.struct:
        for (const field of this.fields()) this.skipValue(field.type, depth + 1)
        return
      default:
        throw new MalformedFooter(`unknown compact type ${type}`)
    }
  }

  /** The fields of the struct starting here, each yielded before its value is read (the caller reads or skips it). */
  *fields(): Generator<{ readonly id: number; readonly type: number }> {
    let lastId = 0
    for (;;) {
      const header = this.byte()
      const type = header & 0x0f
      if (type === compact.stop) return
      const delta = header >> 4
      const id = delta === 0 ? this.zigzag() : lastId + delta
      lastId = id
      yield { id, type }
    }
  }
}

const int64Type = 2
const byteArrayType = 6
/** ConvertedType codes of texts: UTF8, ENUM, JSON. */
const textConvertedTypes = new Set([0, 4, 19])
/** LogicalType union members of texts: STRING, ENUM, JSON. */
const textLogicalTypes = new Set([1, 4, 12])
/** ConvertedType codes of timestamps, by unit. */
const timestampConvertedUnits: ReadonlyMap<number, TimestampUnit["unit"]> = new Map([
  [9, "millis"],
  [10, "micros"]
])
const timestampLogicalMember = 8
const timeUnits: ReadonlyArray<TimestampUnit["unit"] | undefined> = [undefined, "millis", "micros", "nanos"]
const repeated = 2

/** The unit of an INT64 timestamp column, and whether it is adjusted to UTC (legacy converted types: unknown). */
export interface TimestampUnit {
  readonly unit: "millis" | "micros" | "nanos"
  readonly adjustedToUtc: boolean | undefined
}

/** What one SchemaElement is, as far as the rewrite needs to know. */
interface SchemaElementFacts {
  readonly changed: boolean
  readonly name: string | undefined
  readonly numChildren: number
  /** The unit when the element is an INT64 timestamp whose annotation was removed. */
  readonly timestampUnit: TimestampUnit | undefined
}

/** The unit of a LogicalType TIMESTAMP struct (isAdjustedToUTC, unit); undefined when it names none. */
const readTimestampUnit = (reader: CompactReader): TimestampUnit | undefined => {
  let unit: TimestampUnit["unit"] | undefined
  let adjustedToUtc: boolean | undefined
  for (const field of reader.fields()) {
    if (field.id === 1 && isBoolean(field.type)) adjustedToUtc = field.type === compact.booleanTrue
    else if (field.id === 2 && field.type === compact.struct)
      for (const member of reader.fields()) {
        unit ??= timeUnits[member.id]
        reader.skipValue(member.type)
      }
    else reader.skipValue(field.type)
  }
  return unit === undefined ? undefined : { unit, adjustedToUtc }
}

/**
 * One SchemaElement re-encoded without the annotations `strip` asks to drop: a BYTE_ARRAY column annotated
 * as text (UTF8, ENUM or JSON, as a converted or a logical type), and, for a top-level column when
 * `timestamps` is set, an INT64 timestamp; any other element as it was.
 */
const rewriteSchemaElement = (
  reader: CompactReader,
  out: ByteSink,
  strip: { readonly text: boolean; readonly timestamps: boolean }
): SchemaElementFacts => {
  const kept: Array<{ id: number; type: number; start: number; end: number }> = []
  let physicalType: number | undefined
  let convertedType: number | undefined
  let logicalMember: number | undefined
  let logicalUnit: TimestampUnit | undefined
  let name: string | undefined
  let numChildren = 0
  let repetition: number | undefined
  for (const field of reader.fields()) {
    const start = reader.at
    if (field.id === 1 && field.type === compact.i32) {
      physicalType = reader.zigzag()
    } else if (field.id === 4 && field.type === compact.binary) {
      const length = reader.varint()
      reader.skip(length)
      name = new TextDecoder().decode(reader.bytes.subarray(reader.at - length, reader.at))
    } else if (field.id === 3 && field.type === compact.i32) {
      repetition = reader.zigzag()
    } else if (field.id === 5 && field.type === compact.i32) {
      numChildren = reader.zigzag()
    } else if (field.id === 6 && field.type === compact.i32) {
      convertedType = reader.zigzag()
    } else if (field.id === 10 && field.type === compact.struct) {
      for (const member of reader.fields()) {
        logicalMember ??= member.id
        if (member.id === timestampLogicalMember && member.type === compact.struct)
          logicalUnit = readTimestampUnit(reader)
        else reader.skipValue(member.type)
      }
    } else reader.skipValue(field.type)
    kept.push({ id: field.id, type: field.type, start, end: reader.at })
  }
  const isText =
    strip.text &&
    physicalType === byteArrayType &&
    (convertedType === undefined || textConvertedTypes.has(convertedType)) &&
    (logicalMember === undefined || textLogicalTypes.has(logicalMember)) &&
    (convertedType !== undefined || logicalMember !== undefined)
  const convertedUnit = convertedType === undefined ? undefined : timestampConvertedUnits.get(convertedType)
  const timestampUnit =
    strip.timestamps &&
    physicalType === int64Type &&
    repetition !== repeated &&
    (convertedType === undefined || convertedUnit !== undefined) &&
    (logicalMember === undefined || logicalMember === timestampLogicalMember)
      ? (logicalUnit ??
        (convertedUnit === undefined ? undefined : { unit: convertedUnit, adjustedToUtc: undefined }))
      : undefined
  const stripped = isText || timestampUnit !== undefined
  let lastId = 0
  for (const field of kept) {
    if (stripped && (field.id === 6 || field.id === 10)) continue
    writeFieldHeader(out, field.id, lastId, field.type)
    lastId = field.id
    out.appendBytes(reader.bytes.subarray(field.start, field.end))
  }
  out.byte(compact.stop)
  return { changed: stripped, name, numChildren, timestampUnit }
}

/** A Parquet file with some columns' annotations removed, and the timestamp columns that lost theirs. */
export interface PlainColumns {
  readonly file: Uint8Array
  /** Top-level, non-repeated INT64 timestamp columns now read as plain integers, by name, with their unit. */
  readonly timestampUnits: ReadonlyMap<string, TimestampUnit>
}

/**
 * The file with its text columns (BYTE_ARRAY annotated UTF8, ENUM or JSON) declared as plain binary, and,
 * with `timestamps`, its top-level, non-repeated INT64 timestamp columns as plain integers (their units
 * returned). Undefined when nothing changes, when timestamps would change in a file whose top-level names
 * repeat (ignoring case), or when the file is not a plain Parquet file whose footer can be read (an
 * encrypted footer, a cut file).
 */
export const withPlainColumns = (
  file: Uint8Array,
  strip: { readonly timestamps: boolean } = { timestamps: false }
): PlainColumns | undefined => {
  const length = file.length
  if (length < 12 || magic.some((byte, index) => file[length - 4 + index] !== byte)) return undefined
  const footerLength = new DataView(file.buffer, file.byteOffset + length - 8, 4).getUint32(0, true)
  const footerStart = length - 8 - footerLength
  if (footerStart < 4) return undefined
  const footer = file.subarray(footerStart, length - 8)
  try {
    const reader = new CompactReader(footer, 0)
    for (const field of reader.fields()) {
      if (field.id !== 2 || field.type !== compact.list) {
        reader.skipValue(field.type)
        continue
      }
      const listStart = reader.at
      const header = reader.byte()
      const size = reader.size(header >> 4 === 15 ? reader.varint() : header >> 4)
      if ((header & 0x0f) !== compact.struct) return undefined
      const elementsStart = reader.at
      const elements = new ByteSink(footer.length)
      const timestampUnits = new Map<string, TimestampUnit>()
      let changed = false
      // Children left to read at each open level of the schema tree (the root's first).
      const open: Array<number> = []
      // DuckDB renames a repeated name (`aa`, `AA` → `AA_1`), which a lookup by name would then miss.
      const topLevelNames = new Set<string>()
      let namesRepeat = false
      for (let index = 0; index < size; index++) {
        const topLevel = open.length === 1
        const facts = rewriteSchemaElement(reader, elements, {
          text: true,
          timestamps: strip.timestamps && topLevel
        })
        changed = facts.changed || changed
        if (facts.timestampUnit !== undefined && facts.name !== undefined)
          timestampUnits.set(facts.name, facts.timestampUnit)
        if (topLevel) {
          const lowerCase = (facts.name ?? "").toLowerCase()
          namesRepeat ||= topLevelNames.has(lowerCase)
          topLevelNames.add(lowerCase)
        }
        if (open.length > 0) open[open.length - 1]!--
        if (facts.numChildren > 0) open.push(facts.numChildren)
        while (open.length > 0 && open[open.length - 1] === 0) open.pop()
      }
      if (!changed || (timestampUnits.size > 0 && namesRepeat)) return undefined
      // The fields after the schema keep their ids, so their bytes are copied as they are.
      const rest = footer.subarray(reader.at)
      const headerBytes = footer.subarray(listStart, elementsStart)
      const newFooterLength = listStart + headerBytes.length + elements.length + rest.length
      const result = new Uint8Array(footerStart + newFooterLength + 8)
      result.set(file.subarray(0, footerStart), 0)
      let at = footerStart
      result.set(footer.subarray(0, listStart), at)
      at += listStart
      result.set(headerBytes, at)
      at += headerBytes.length
      result.set(elements.bytes.subarray(0, elements.length), at)
      at += elements.length
      result.set(rest, at)
      at += rest.length
      new DataView(result.buffer).setUint32(at, newFooterLength, true)
      result.set(magic, at + 4)
      return { file: result, timestampUnits }
    }
    return undefined
  } catch (error) {
    if (error instanceof MalformedFooter) return undefined
    throw error
  }
}

/** {@link withPlainColumns} for text columns only: the file's bytes, or undefined when it has none. */
export const withTextColumnsAsBinary = (file: Uint8Array): Uint8Array | undefined =>
  withPlainColumns(file)?.file
