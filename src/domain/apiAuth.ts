import { createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto"
import { Either } from "effect"

/** A client allowed to call the ingestion API with an API key; only the key's SHA-256 is stored. */
export interface ApiKeyEntry {
  readonly clientId: string
  /** SHA-256 of the key, 32 bytes. */
  readonly keyHash: Uint8Array
}

/** A partner that signs its requests with HMAC-SHA256 over a shared secret. */
export interface PartnerSecret {
  readonly partnerId: string
  readonly secret: Uint8Array
}

const sha256 = (text: string): Uint8Array => hash("sha256", text, "buffer")

/** The stored form of an API key: hex SHA-256 of its UTF-8 bytes. */
export const hashApiKey = (key: string): string => Buffer.from(sha256(key)).toString("hex")

/** A new random API key (`rk_` + 32 random bytes, base64url) and the line to put in `RECON_API_KEYS`. */
export const mintApiKey = (clientId: string): { readonly key: string; readonly entry: string } => {
  const key = `rk_${randomBytes(32).toString("base64url")}`
  return { key, entry: `${clientId}:${hashApiKey(key)}` }
}

const clientIdPattern = /^[A-Za-z0-9_.-]{1,64}$/

/** The non-empty, trimmed entries of a comma-separated setting. */
const listEntries = (text: string): ReadonlyArray<string> =>
  text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")

/**
 * Parses `RECON_API_KEYS`: comma-separated `client_id:sha256-hex` entries. Refuses with the entry's
 * position and the reason; never echoes a value, which could be a key pasted by mistake.
 */
export const parseApiKeyEntries = (text: string): Either.Either<ReadonlyArray<ApiKeyEntry>, string> => {
  const entries: Array<ApiKeyEntry> = []
  for (const [index, part] of listEntries(text).entries()) {
    const separator = part.lastIndexOf(":")
    const clientId = part.slice(0, separator)
    const hash = part.slice(separator + 1)
    if (separator <= 0 || !clientIdPattern.test(clientId)) {
      return Either.left(
        `RECON_API_KEYS entry ${index + 1}: expected client_id:sha256-hex with a client id of [A-Za-z0-9_.-]`
      )
    }
    if (!/^[0-9a-f]{64}$/i.test(hash)) {
      return Either.left(
        `RECON_API_KEYS entry ${index + 1} (${clientId}): the key hash must be 64 hex digits (SHA-256)`
      )
    }
    entries.push({ clientId, keyHash: Buffer.from(hash, "hex") })
  }
  return Either.right(entries)
}

/**
 * Parses `RECON_PARTNER_SECRETS`: comma-separated `partner_id:secret` entries (secret at least 16
 * characters). Refuses naming the entry, never the secret.
 */
export const parsePartnerSecrets = (text: string): Either.Either<ReadonlyArray<PartnerSecret>, string> => {
  const secrets: Array<PartnerSecret> = []
  for (const [index, part] of listEntries(text).entries()) {
    const separator = part.indexOf(":")
    const partnerId = part.slice(0, separator)
    const secret = part.slice(separator + 1)
    if (separator <= 0 || !clientIdPattern.test(partnerId)) {
      return Either.left(
        `RECON_PARTNER_SECRETS entry ${index + 1}: expected partner_id:secret with an id of [A-Za-z0-9_.-]`
      )
    }
    if (secret.length < 16) {
      return Either.left(
        `RECON_PARTNER_SECRETS entry ${index + 1} (${partnerId}): the secret must be at least 16 characters`
      )
    }
    secrets.push({ partnerId, secret: Buffer.from(secret, "utf8") })
  }
  return Either.right(secrets)
}

/**
 * The client whose key this is, comparing the key's hash with every stored hash in constant time (no
 * early exit, so the time taken says nothing about which entry, if any, matched).
 */
export const verifyApiKey = (entries: ReadonlyArray<ApiKeyEntry>, presented: string): string | undefined => {
  const hash = sha256(presented)
  let matched: string | undefined
  for (const entry of entries) {
    if (timingSafeEqual(hash, entry.keyHash) && matched === undefined) matched = entry.clientId
  }
  return matched
}

/** What a partner signs: the Unix time in seconds, the request path and the exact body. */
export const signedPayload = (timestampSeconds: number, path: string, body: string): string =>
  `${timestampSeconds}.${path}.${body}`

/** The `X-Signature` header value for a request: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const signRequest = (
  secret: string | Uint8Array,
  timestampSeconds: number,
  path: string,
  body: string
): string => {
  const mac = createHmac("sha256", secret).update(signedPayload(timestampSeconds, path, body), "utf8")
  return `t=${timestampSeconds},v1=${mac.digest("hex")}`
}

/** A verified signature: its digest identifies the request for replay detection. */
export interface VerifiedSignature {
  readonly partnerId: string
  readonly digest: string
  readonly timestampSeconds: number
}

/**
 * Checks an `X-Signature` header: well formed, the timestamp within `windowSeconds` of `nowMillis`
 * either way, and the HMAC equal (constant time) to the partner's over `t.path.body`. Left is the
 * reason, safe to return to the caller.
 */
export const verifySignature = (options: {
  readonly partners: ReadonlyArray<PartnerSecret>
  readonly partnerId: string
  readonly header: string
  readonly path: string
  /** The exact body: its bytes as received (a string is taken as UTF-8). */
  readonly body: string | Uint8Array
  readonly nowMillis: number
  readonly windowSeconds: number
}): Either.Either<VerifiedSignature, string> => {
  const fields = new Map<string, string>()
  for (const part of options.header.split(",")) {
    const separator = part.indexOf("=")
    if (separator > 0) fields.set(part.slice(0, separator).trim(), part.slice(separator + 1).trim())
  }
  const timestampText = fields.get("t")
  const digest = fields.get("v1")
  if (timestampText === undefined || !/^\d{1,12}$/.test(timestampText) || digest === undefined) {
    return Either.left("X-Signature must be t=<unix seconds>,v1=<hex HMAC-SHA256>")
  }
  if (!/^[0-9a-f]{64}$/i.test(digest)) return Either.left("X-Signature v1 must be 64 hex digits")
  const timestampSeconds = Number(timestampText)
  const skewSeconds = Math.abs(options.nowMillis / 1000 - timestampSeconds)
  if (skewSeconds > options.windowSeconds) {
    return Either.left(
      `signature timestamp is ${Math.round(skewSeconds)} s away from server time (window ${options.windowSeconds} s)`
    )
  }
  const partner = options.partners.find((candidate) => candidate.partnerId === options.partnerId)
  // An unknown partner is checked against a throwaway secret so it takes as long as a wrong signature.
  const secret = partner?.secret ?? randomBytes(32)
  const expected = createHmac("sha256", secret)
    .update(signedPayload(timestampSeconds, options.path, ""), "utf8")
    .update(typeof options.body === "string" ? Buffer.from(options.body, "utf8") : options.body)
    .digest()
  const matches = timingSafeEqual(expected, Buffer.from(digest, "hex"))
  if (partner === undefined || !matches) return Either.left("signature does not match")
  return Either.right({ partnerId: partner.partnerId, digest: digest.toLowerCase(), timestampSeconds })
}
