/**
 * The value of a real service's environment variable, or `undefined` to skip the tests that need it.
 * When `RECON_REQUIRE_SERVICES=1` (set by `scripts/services.sh up` in `.services/env`), a missing
 * variable throws instead, so a broken service setup fails the run rather than silently skipping.
 */
export const requireService = (name: string, envVar: string): string | undefined => {
  const value = process.env[envVar]
  if (value !== undefined && value !== "") return value
  if (process.env.RECON_REQUIRE_SERVICES === "1") {
    throw new Error(`${name} is required (RECON_REQUIRE_SERVICES=1) but ${envVar} is not set`)
  }
  return undefined
}
