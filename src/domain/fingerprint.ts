import { createHash } from "node:crypto"
import { Schema } from "effect"

/** Every field name of a struct schema's records, sorted: the key order of a record's fingerprint. */
export const sortedFieldsOf = <A, I>(schema: Schema.Schema<A, I>): ReadonlyArray<string> => {
  const ast = Schema.typeSchema(schema).ast
  return ast._tag === "TypeLiteral" ? ast.propertySignatures.map((field) => String(field.name)).sort() : []
}

/**
 * SHA-256 (base64url) of a decoded record's fields in `sortedFields` order: the same record gives the same
 * fingerprint whatever order its fields came in; fields outside the list (unknown ones) do not count.
 */
export const recordFingerprint = (
  record: Readonly<Record<string, unknown>>,
  sortedFields: ReadonlyArray<string>
): string => {
  let text = ""
  for (const field of sortedFields) {
    const value = record[field]
    if (value !== undefined) text += `${field}:${JSON.stringify(value)};`
  }
  return createHash("sha256").update(text).digest("base64url")
}
