import { Schema } from "effect"
import { characterCount, UnicodeString } from "./fields.js"

/** The longest id, in characters (Unicode code points). */
export const idMaxLength = 128

/** True for a well-formed text of 1 to {@link idMaxLength} characters. */
export const isBoundedId = (text: string): boolean =>
  text.length >= 1 &&
  (text.length <= idMaxLength || characterCount(text) <= idMaxLength) &&
  text.isWellFormed()

const boundedId = <B extends string>(brand: B) =>
  UnicodeString.pipe(
    Schema.filter((text) =>
      text.length === 0
        ? "must not be empty"
        : characterCount(text) > idMaxLength
          ? `must be at most ${idMaxLength} characters`
          : true
    ),
    Schema.brand(brand)
  )

/** Unique id of a transaction event; a retried or replayed event keeps it. */
export const EventId = boundedId("EventId")
export type EventId = typeof EventId.Type

/** Id of a payment transaction; all of its events share it. */
export const TransactionId = boundedId("TransactionId")
export type TransactionId = typeof TransactionId.Type

/**
 * The transaction a fraud signal is about: any text, since contract §2 gives it no length rule (it joins
 * only when a transaction has that id).
 */
export const SignalTransactionId = UnicodeString.pipe(Schema.brand("TransactionId"))

/** Unique id of a fraud signal. */
export const SignalId = boundedId("SignalId")
export type SignalId = typeof SignalId.Type

/** Id of a user (payer). */
export const UserId = boundedId("UserId")
export type UserId = typeof UserId.Type

/** Id of a merchant (payee). */
export const MerchantId = boundedId("MerchantId")
export type MerchantId = typeof MerchantId.Type
