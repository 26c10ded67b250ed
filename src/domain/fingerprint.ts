import { hash } from "node:crypto"
import { Schema } from "effect"

/** Every field name of a struct schema's records, sorted: the key order of a record's fingerprint. */
export const sortedFieldsOf = <A, I>(schema: Schema.Schema<A, I>): ReadonlyArray<string> => {
  const ast = Schema.typeSchema(schema).ast
  return ast._tag === "TypeLiteral" ? ast.propertySignatures.map((field) => String(field.name)).sort() : []
}

/**
 * SHA-256 (base64url) of a decoded record's field values in `sortedFields` order: the same record gives the
 * same fingerprint whatever order its fields came in; fields outside the list (unknown ones) do not count,
 * and an absent optional field counts as null (the contract treats them alike).
 */
export const recordFingerprint = (
  record: Readonly<Record<string, unknown>>,
  sortedFields: ReadonlyArray<string>
): string => hash("sha256", JSON.stringify(sortedFields.map((field) => record[field] ?? null)), "base64url")
