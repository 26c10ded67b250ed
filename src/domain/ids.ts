import { Schema } from "effect"

/** The longest id, in UTF-16 code units. */
export const idMaxLength = 128

const boundedId = <B extends string>(brand: B) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => "must not be empty" }),
    Schema.maxLength(idMaxLength, { message: () => `must be at most ${idMaxLength} characters` }),
    Schema.brand(brand)
  )

/** Unique id of a transaction event; a retried or replayed event keeps it. */
export const EventId = boundedId("EventId")
export type EventId = typeof EventId.Type

/** Id of a payment transaction; all of its events share it. */
export const TransactionId = boundedId("TransactionId")
export type TransactionId = typeof TransactionId.Type

/** Unique id of a fraud signal. */
export const SignalId = boundedId("SignalId")
export type SignalId = typeof SignalId.Type

/** Id of a user (payer). */
export const UserId = boundedId("UserId")
export type UserId = typeof UserId.Type

/** Id of a merchant (payee). */
export const MerchantId = boundedId("MerchantId")
export type MerchantId = typeof MerchantId.Type
